"""Who a bearer token acts for, and which customers it may see (wire contract section 5)."""
