"""The `nanoclaw` command line: `main.py` holds the group and the everyday commands (run, chat, send,
status); each other command group has its own module (groups, doctor, setup, pairing, owner, …)."""

from nanoclaw.cli.main import main

__all__ = ["main"]
