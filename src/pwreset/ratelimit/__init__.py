"""Rate limits on what a stranger can repeat, shared across nodes through Redis when configured."""
