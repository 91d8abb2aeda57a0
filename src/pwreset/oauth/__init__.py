"""OAuth2 token service (contract sections 2 to 5): clients, tokens, grants, bearer checks."""
