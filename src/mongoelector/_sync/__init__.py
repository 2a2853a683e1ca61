"""The synchronous driver: thin loops that run the pure machines with real I/O."""
