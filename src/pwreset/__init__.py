"""pwreset: a self-hosted password reset service wire-compatible with Candescent's Reset Password API."""

__version__ = "0.1.0"
