"""The runner: one per active session, inside the sandbox (DESIGN §7)."""
