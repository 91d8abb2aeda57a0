"""The hosted reset page (`/reset/{institutionId}`, issue 15): docs/reset-page.md."""
