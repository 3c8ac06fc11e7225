"""NanoClaw: a personal AI assistant whose agents run in OS sandboxes."""

__version__ = "0.1.0"
