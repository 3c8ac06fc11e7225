"""Adaptive Cards for the channels whose platforms render them (Teams, Webex): question cards with buttons,
credential cards, the credential form, and reading what a press submitted.

Everything a press needs rides in the button's `data` (card id and label, or the credential
token), so a card keeps working after a restart and the channel keeps no state between the steps.
A typed credential arrives in the submitted inputs; `take_value` removes it from them as it is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nanoclaw.channels.base import OutgoingMessage
from nanoclaw.channels.text import to_markdown

CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.3"  # the newest version both Teams and Webex render
MARK = "nanoclaw"  # key in a button's data saying what the press means
VALUE_INPUT = "nanoclaw_value"  # id of the credential input
ENTER_LABEL, SAVE_LABEL, REFUSE_LABEL = "Enter credential", "Save", "Refuse"
MAX_BUTTONS = 20  # more would not fit on a phone; the rest are listed in the text
MAX_LABEL = 500  # a label rides in the data; longer ones arrive cut
MAX_TOKEN = 200


@dataclass(frozen=True)
class Press:
    """What a person's press on one of our cards means."""

    kind: str  # answer | credential | refuse | form (Teams: open the credential form)
    card_id: str = ""
    label: str = ""
    token: str = ""
    name: str = ""
    host: str = ""


def attachment(card: dict[str, Any]) -> dict[str, Any]:
    """A card as a message attachment (the same shape on Teams and Webex)."""
    return {"contentType": CONTENT_TYPE, "content": card}


def _card(body: list[dict[str, Any]], actions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    card: dict[str, Any] = {"type": "AdaptiveCard", "$schema": SCHEMA, "version": VERSION, "body": body}
    if actions:
        card["actions"] = actions
    return card


def _text(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **extra}


def head(message: OutgoingMessage) -> list[dict[str, Any]]:
    """A card's title and text as TextBlocks (the text in the platforms' Markdown)."""
    body = [_text(message.title, weight="Bolder", size="Medium")] if message.title else []
    if message.text:
        body.append(_text(to_markdown(message.text)))
    return body


def question_card(message: OutgoingMessage) -> dict[str, Any]:
    """A card whose buttons answer `message.card_id`; buttons beyond MAX_BUTTONS are listed as text."""
    body = head(message)
    shown, rest = message.buttons[:MAX_BUTTONS], message.buttons[MAX_BUTTONS:]
    if rest:
        body.append(_text("\n".join(f"{i}) {label}" for i, label in enumerate(rest, MAX_BUTTONS + 1))))
    actions = [{"type": "Action.Submit", "title": label[:80],
                "data": {MARK: "answer", "card": message.card_id, "label": label[:MAX_LABEL]}} for label in shown]
    return _card(body, actions)


def credential_request(message: OutgoingMessage) -> dict[str, str] | None:
    """Token, name and host of a credential request card (None: not one, or its token is unusable)."""
    request = message.payload.get("credential") if message.kind == "card" else None
    if not isinstance(request, dict):
        return None
    token = request.get("token")
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN:
        return None
    return {"token": token, "name": str(request.get("name") or "")[:200], "host": str(request.get("host") or "")[:200]}


def credential_card(message: OutgoingMessage, credential: dict[str, str], *, task_module: bool) -> dict[str, Any]:
    """The request card. With `task_module` (Teams) "Enter credential" opens a form in a dialog;
    otherwise (Webex, which has no dialogs) the input is on the card itself."""
    body = head(message)
    refuse = {"type": "Action.Submit", "title": REFUSE_LABEL, "data": {MARK: "refuse", "token": credential["token"]}}
    if task_module:
        enter = {"type": "Action.Submit", "title": ENTER_LABEL,
                 "data": {"msteams": {"type": "task/fetch"}, MARK: "form", **credential}}
        body.append(_text("It goes to NanoClaw's vault: the assistant never sees it.", isSubtle=True))
        return _card(body, [enter, refuse])
    body += [
        _text("Type it here: it goes to NanoClaw's vault, not into the chat, and the assistant never sees it.",
              isSubtle=True),
        {"type": "Input.Text", "id": VALUE_INPUT, "placeholder": "Paste it here", "isRequired": True,
         "errorMessage": "Enter the value, or refuse."},
    ]
    save = {"type": "Action.Submit", "title": SAVE_LABEL, "data": {MARK: "credential", "token": credential["token"]}}
    return _card(body, [save, refuse])


def credential_form(credential: dict[str, str]) -> dict[str, Any]:
    """The form a Teams task module shows: one password input; the token rides in the Save button."""
    what = f"**{credential['name']}**" if credential.get("name") else "a credential"
    if credential.get("host"):
        what += f" for `{credential['host']}`"
    return _card(
        [_text(f"The assistant asks for {what}. It goes to NanoClaw's vault: the assistant never sees it."),
         {"type": "Input.Text", "id": VALUE_INPUT, "style": "Password", "placeholder": "Paste it here",
          "isRequired": True, "errorMessage": "Enter the value, or close this form."}],
        [{"type": "Action.Submit", "title": SAVE_LABEL,
          "data": {MARK: "credential", "token": credential["token"]}}],
    )


def answered_card(body: list[dict[str, Any]], outcome: str) -> dict[str, Any]:
    """A card's body without its buttons, and a last line saying how it was answered."""
    kept = [b for b in body if isinstance(b, dict) and b.get("type") == "TextBlock"
            and not str(b.get("id") or "").startswith(MARK)]
    return _card([*kept, _text(outcome, isSubtle=True, id=f"{MARK}_outcome")])


def parse_press(data: Any) -> Press | None:
    """What a submitted card's data means; None when it is not one of our cards'."""
    if not isinstance(data, dict):
        return None
    kind = data.get(MARK)
    if kind == "answer":
        card, label = data.get("card"), data.get("label")
        if isinstance(card, str) and card and isinstance(label, str):
            return Press("answer", card_id=card, label=label)
        return None
    if kind in ("credential", "refuse", "form"):
        token = data.get("token")
        if isinstance(token, str) and token and len(token) <= MAX_TOKEN:
            return Press(kind, token=token, name=str(data.get("name") or "")[:200],
                         host=str(data.get("host") or "")[:200])
    return None


def take_value(inputs: Any) -> str | None:
    """The typed credential, removed from the submitted inputs as it is read (whitespace dropped)."""
    if not isinstance(inputs, dict):
        return None
    value = inputs.pop(VALUE_INPUT, None)
    return value.strip() or None if isinstance(value, str) else None
