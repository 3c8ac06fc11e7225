"""Model providers, found through the `nanoclaw.providers` entry points."""
