"""Security events for the institution: signed webhooks, delivered through the outbox (issue 14)."""
