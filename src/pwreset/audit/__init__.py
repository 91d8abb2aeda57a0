"""Audit events: an append-only record of who did what, to whom, with what outcome."""
