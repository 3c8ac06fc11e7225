"""What channels with modals share when a person enters a credential there (Slack, Discord).

The value goes to the host (`ChannelHost.submit_credential`) and nowhere else: a
failure is logged by exception type only, and a status that happens to quote the
value is shown with the value hidden.
"""

from __future__ import annotations

from typing import Any

from nanoclaw.logs import get_logger

log = get_logger("nanoclaw.channels.credentials")


def submit(host: Any, channel: str, token: str, value: str | None, sender_id: str) -> str:
    """Hand the value to the host; returns the status (saved, rejected, refused: …, failed: …, expired)."""
    try:
        status = str(host.submit_credential(token, value, sender_id=sender_id))
    except Exception as exc:  # the type only: an exception's text might quote the value
        log.error("credential.submit_failed", channel=channel, error=type(exc).__name__)
        return "failed: NanoClaw could not save it"
    if value and value in status:  # a status is shown in the chat: never with the value in it
        status = status.replace(value, "[hidden]")
    return status


def reply(status: str) -> str:
    """What the person who answered is told (privately, where the platform allows)."""
    if status == "saved":
        return "Saved in NanoClaw's vault. The assistant can use it now, without ever seeing it."
    if status == "rejected":
        return "Refused. The assistant was told."
    if status == "expired":
        return "This request has expired or was already answered. Ask the assistant again if it still needs it."
    if status.startswith("refused:"):
        return status.removeprefix("refused:").strip()
    if status.startswith("failed:"):
        return f"Not saved: {status.removeprefix('failed:').strip()}. The assistant was told."
    return f"Done: {status}."


def outcome(status: str) -> str:
    """The card's last line once answered."""
    if status == "saved":
        return "✅ Saved in NanoClaw's vault"
    if status == "rejected":
        return "Refused"
    if status == "expired":
        return "Expired or already answered"
    return "Not saved"
