"""The session-folder protocol between host and runner (DESIGN §3).

This package is the only code shared by the host and the runner, so it stays
small and imports nothing heavy: the runner's cold start pays for every import.
"""
