"""Errors that say what went wrong for the person, each with its fix where there is one."""


class NanoClawError(Exception):
    """Base of NanoClaw's own errors."""


class ConfigError(NanoClawError):
    """A setting is missing or wrong. With `fix`, what to change is also kept apart (doctor prints it as the fix)."""

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(f"{message}: {fix}" if fix else message)
        self.reason = message
        self.fix = fix


class SandboxUnavailable(NanoClawError):
    """The chosen sandbox runtime cannot run here."""


class DestinationRefused(NanoClawError):
    """An agent tried to send somewhere its agent group may not send."""


class MessageRejected(NanoClawError):
    """An inbound message cannot be accepted (empty, too large, …); the text is for the sender."""


class ChannelUnavailable(NanoClawError):
    """A channel cannot deliver right now; delivery will retry."""


class HostNotRunning(NanoClawError):
    """The CLI could not reach the host's local API."""
