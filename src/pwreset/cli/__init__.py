"""The ``pwreset`` command line."""
