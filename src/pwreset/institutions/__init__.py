"""Institutions: the tenants. Every other row belongs to exactly one."""
