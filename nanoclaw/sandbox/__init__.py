"""Sandbox runtimes behind one interface (DESIGN §5)."""
