"""The host: one asyncio process owning channels, routing, sessions, runners and delivery."""
