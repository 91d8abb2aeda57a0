"""The customer directory: customers of one institution, their contact methods, sign-in."""
