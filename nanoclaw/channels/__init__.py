"""Channel adapters, found through the `nanoclaw.channels` entry points."""
