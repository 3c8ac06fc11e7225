"""Block Kit for the Slack channel: question cards with buttons, credential cards and the modal they open.

Everything a card needs rides on its buttons and the modal's private_metadata, so a
card still works after a restart and the channel keeps no state between the steps.
"""

from __future__ import annotations

import json
from typing import Any

from nanoclaw.channels.base import OutgoingMessage
from nanoclaw.logs import get_logger

log = get_logger("nanoclaw.channels.slack")

BUTTON_TEXT_LIMIT = 75  # Block Kit plain_text on a button
BUTTON_VALUE_LABEL_LIMIT = 1900  # the value holds at most 2000 characters, JSON included
CREDENTIAL_ENTER, CREDENTIAL_REFUSE = "nanoclaw_credential_enter", "nanoclaw_credential_refuse"
CREDENTIAL_VIEW = "nanoclaw_credential"  # the modal's callback_id
CREDENTIAL_BLOCK, CREDENTIAL_INPUT = "credential", "value"  # the modal's input block and its element
ENTER_LABEL, REFUSE_LABEL = "Enter credential", "Refuse"
METADATA_LIMIT = 3000  # a view's private_metadata
INPUT_LIMIT = 3000  # the most a plain_text_input takes
MAX_TOKEN = 200  # longer credential tokens are not put on buttons (the form link still works)


def card_blocks(message: OutgoingMessage) -> list[dict[str, Any]]:
    """A question card's buttons: each value carries the card and the full label."""
    buttons = [{
        "type": "button", "action_id": f"nanoclaw_answer_{i}",
        "text": {"type": "plain_text", "text": shorten(label, BUTTON_TEXT_LIMIT)},
        "value": json.dumps({"card": message.card_id, "label": label[:BUTTON_VALUE_LABEL_LIMIT]}),
    } for i, label in enumerate(message.buttons)]
    return [{"type": "actions", "block_id": f"card:{message.card_id}"[:255], "elements": buttons[:25]}]


class CredentialCard:
    """Where a credential card is and what it said: carried in the modal's private_metadata."""

    def __init__(self, token: str, channel: str, ts: str, thread_ts: Any, head: str) -> None:
        self.token, self.channel, self.ts, self.head = token, channel, ts, head
        self.thread_ts = thread_ts if isinstance(thread_ts, str) else None

    def metadata(self) -> str:
        fields = {"token": self.token, "channel": self.channel, "ts": self.ts, "thread_ts": self.thread_ts}
        head = self.head
        while True:
            encoded = json.dumps({**fields, "head": head}, ensure_ascii=False)
            if len(encoded) <= METADATA_LIMIT:
                return encoded
            head = shorten(head, max(1, len(head) - (len(encoded) - METADATA_LIMIT) - 1))

    @classmethod
    def from_metadata(cls, raw: Any) -> CredentialCard:
        data = json.loads(raw)
        token, channel, ts = data["token"], data["channel"], data["ts"]
        if not all(isinstance(v, str) and v for v in (token, channel, ts)):
            raise ValueError("incomplete private_metadata")
        return cls(token, channel, ts, data.get("thread_ts"), str(data.get("head") or ""))


def credential_request(message: OutgoingMessage) -> dict[str, str] | None:
    """Token, name and host of a credential request card (None: not one, or unusable on a button)."""
    request = message.payload.get("credential") if message.kind == "card" else None
    if not isinstance(request, dict):
        return None
    token = request.get("token")
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN:
        log.warning("slack.credential_token_unusable", card=message.card_id)  # the form link still works
        return None
    return {"token": token, "name": str(request.get("name") or "")[:200], "host": str(request.get("host") or "")[:200]}


def credential_blocks(message: OutgoingMessage, credential: dict[str, str]) -> list[dict[str, Any]]:
    value = json.dumps(credential)
    return [{"type": "actions", "block_id": f"credential:{message.card_id or ''}"[:255], "elements": [
        {"type": "button", "action_id": CREDENTIAL_ENTER, "style": "primary", "value": value,
         "text": plain(ENTER_LABEL)},
        {"type": "button", "action_id": CREDENTIAL_REFUSE, "value": value, "text": plain(REFUSE_LABEL),
         "confirm": {"title": plain("Refuse this request?"), "text": plain("The assistant is told that you refused."),
                     "confirm": plain(REFUSE_LABEL), "deny": plain("Back")}},
    ]}]


def credential_modal(card: CredentialCard, name: str, host: str) -> dict[str, Any]:
    """The modal "Enter credential" opens: one plain_text_input; the card rides in private_metadata."""
    what = f"*{escape(name)}*" if name else "a credential"
    if host:
        what += f" for `{escape(host)}`"
    return {
        "type": "modal", "callback_id": CREDENTIAL_VIEW, "private_metadata": card.metadata(),
        "title": plain("Credential needed"), "submit": plain("Save"), "close": plain("Cancel"),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"The assistant asks for {what}. It goes to "
                                                                   "NanoClaw's vault: the assistant never sees it."}},
            {"type": "input", "block_id": CREDENTIAL_BLOCK, "label": plain("Value"),
             "element": {"type": "plain_text_input", "action_id": CREDENTIAL_INPUT, "max_length": INPUT_LIMIT,
                         "placeholder": plain("Paste it here")},
             "hint": plain("Slack has no hidden input: the value shows while you type it.")},
        ],
    }


def take_value(view: Any) -> str | None:
    """The modal's value, removed from the payload as it is read (surrounding whitespace dropped)."""
    try:
        element = view["state"]["values"][CREDENTIAL_BLOCK][CREDENTIAL_INPUT]
        value = element.pop("value", None)
    except (KeyError, TypeError, AttributeError):
        return None
    return value.strip() if isinstance(value, str) else None


def card_head(message: dict[str, Any], token: str) -> str:
    """A credential card's text up to its one-time link (used or dead once the request is answered)."""
    text = next((str(b["text"].get("text") or "") for b in message.get("blocks") or []
                 if isinstance(b, dict) and b.get("type") == "section" and isinstance(b.get("text"), dict)), "")
    lines = (text or str(message.get("text") or "")).splitlines()
    cut = next((i for i, line in enumerate(lines) if token in line or ENTER_LABEL in line), len(lines))
    return "\n".join(lines[:cut]).strip()


def plain(text: str) -> dict[str, str]:
    return {"type": "plain_text", "text": text}


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
