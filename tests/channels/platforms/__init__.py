"""One module per chat platform: its fake server and how a person acts on it (see tests/channels/harness.py).

Each module defines `PLATFORM`, a `Platform` subclass; the contract suite finds them here.
"""
