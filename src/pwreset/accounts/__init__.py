"""Customers' accounts and the Accounts API (contract section 8)."""
