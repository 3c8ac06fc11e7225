"""Discord components for the channel: question cards' buttons, credential cards and the modal they open.

Everything a press needs rides in the custom_id, so a card still works after a
restart and the channel keeps no state between the steps. A modal's value is
taken out of the interaction as it is read and hidden from discord.py's own logs.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import discord

from nanoclaw.channels.base import OutgoingMessage
from nanoclaw.logs import get_logger

log = get_logger("nanoclaw.channels.discord")

MAX_BUTTONS = 25  # 5 action rows of 5 buttons
CUSTOM_ID_PREFIX = "nc"  # our buttons' custom_id: nc|<card_id>|<index>|<label>, at most 100 characters
CREDENTIAL_PREFIX = "ncc"  # "Enter credential" button: ncc|<token>|<name>; the modal it opens: ncc|<token>
REFUSE_PREFIX = "ncr"  # "Refuse" button of a credential card: ncr|<token>
VALUE_INPUT_ID = "value"  # custom_id of the modal's text input
ENTER_LABEL, REFUSE_LABEL = "Enter credential", "Refuse"


def custom_id(card_id: str, index: int, label: str) -> str:
    # The label rides in the custom_id so a press is answered without state kept here;
    # Discord caps custom_id at 100 characters, so a very long label arrives cut.
    return f"{CUSTOM_ID_PREFIX}|{card_id}|{index}|{label}"[:100]


def parse_custom_id(custom_id: str) -> tuple[str, str] | None:
    parts = custom_id.split("|", 3)
    if len(parts) != 4 or parts[0] != CUSTOM_ID_PREFIX or not parts[1] or not parts[2].isdigit():
        return None
    return parts[1], parts[3]


def card_view(message: OutgoingMessage, credential: tuple[str, str] | None = None) -> discord.ui.View:
    """Native buttons; without a card id nothing could take a press, so they are shown disabled.

    A credential request adds "Enter credential" (opens the modal) and "Refuse"."""
    view = discord.ui.View(timeout=None)
    room = MAX_BUTTONS - (2 if credential else 0)
    if len(message.buttons) > room:
        log.warning("discord.too_many_buttons", count=len(message.buttons), shown=room)
    for index, label in enumerate(message.buttons[:room]):
        view.add_item(discord.ui.Button(label=label[:80], custom_id=custom_id(message.card_id or "", index, label),
                                        style=discord.ButtonStyle.secondary, disabled=not message.card_id))
    if credential is not None:
        token, name = credential
        view.add_item(discord.ui.Button(label=ENTER_LABEL, style=discord.ButtonStyle.primary,
                                        custom_id=f"{CREDENTIAL_PREFIX}|{token}|{name}"[:100]))
        view.add_item(discord.ui.Button(label=REFUSE_LABEL, style=discord.ButtonStyle.secondary,
                                        custom_id=f"{REFUSE_PREFIX}|{token}"))
    return view


def credential_request(message: OutgoingMessage) -> tuple[str, str] | None:
    """(token, name) of a credential request card, when its token fits Discord's custom_id."""
    request = message.payload.get("credential") if message.kind == "card" else None
    if not isinstance(request, dict):
        return None
    token, name = request.get("token"), request.get("name")
    if not isinstance(token, str) or not token or "|" in token or len(token) > 90:
        log.warning("discord.credential_token_unusable", card=message.card_id)  # the form link still works
        return None
    return token, name if isinstance(name, str) else ""


def credential_modal(token: str, name: str) -> discord.ui.Modal:
    """The modal a press of "Enter credential" opens (interaction callback type 9)."""
    title = f"Credential: {name}" if name else "Credential needed"
    modal = discord.ui.Modal(title=title[:45], custom_id=f"{CREDENTIAL_PREFIX}|{token}")
    modal.add_item(discord.ui.Label(
        text="Value", description="Saved in NanoClaw's vault. The assistant and the chat never see it.",
        component=discord.ui.TextInput(custom_id=VALUE_INPUT_ID, style=discord.TextStyle.short,
                                       required=True, max_length=4000),
    ))
    modal.stop()  # answered from its custom_id (on_interaction): discord.py must not keep it waiting in memory
    return modal


def take_modal_value(data: dict[str, Any]) -> str | None:
    """The text typed into our modal's input, removed from the interaction's data as it is read."""
    found: str | None = None
    stack = list(data.get("components") or [])
    while stack:
        component = stack.pop()
        if not isinstance(component, dict):
            continue
        if component.get("type") == 4 and component.get("custom_id") == VALUE_INPUT_ID and "value" in component:
            value = component.pop("value")
            if isinstance(value, str) and found is None:
                found = value
        stack.extend(component.get("components") or [])  # action rows (the older modal layout)
        if isinstance(component.get("component"), dict):
            stack.append(component["component"])  # labels
    return found






class _HideModalValues(logging.Filter):
    """discord.py logs every gateway event at DEBUG: a modal submission's values are hidden there."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(_is_modal_submit(a) for a in record.args):
            record.args = tuple(_hidden(a) if _is_modal_submit(a) else a for a in record.args)
        return True


def _is_modal_submit(frame: Any) -> bool:
    return (isinstance(frame, dict) and frame.get("t") == "INTERACTION_CREATE"
            and isinstance(frame.get("d"), dict) and frame["d"].get("type") == 5)


def _hidden(frame: dict[str, Any]) -> dict[str, Any]:
    frame = copy.deepcopy(frame)  # a copy: the event itself is still to be parsed
    stack: list[Any] = [frame["d"].get("data")]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "value" in item:
                item["value"] = "[hidden]"
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return frame


def hide_modal_values() -> None:
    gateway = logging.getLogger("discord.gateway")
    if not any(isinstance(f, _HideModalValues) for f in gateway.filters):
        gateway.addFilter(_HideModalValues())
