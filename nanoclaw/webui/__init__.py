"""The web chat and dashboard page (static files served by the host)."""
