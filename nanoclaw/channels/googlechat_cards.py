"""Google Chat cards v2 for the channel: question cards, credential cards, the credential dialog, and the
synchronous answers a card click gets (an updated card, a dialog, a dialog's status).

Everything a click needs rides in the button's action parameters (card id and label, or the
credential token), so a card keeps working after a restart and the channel keeps no state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nanoclaw.channels.base import OutgoingMessage
from nanoclaw.channels.text import to_google_chat

ANSWER, FORM, SAVE, REFUSE = "nanoclaw_answer", "nanoclaw_credential_form", "nanoclaw_credential", "nanoclaw_refuse"
VALUE_INPUT = "nanoclaw_value"
ENTER_LABEL, SAVE_LABEL, REFUSE_LABEL = "Enter credential", "Save", "Refuse"
MAX_BUTTONS = 20
MAX_TOKEN = 200


@dataclass(frozen=True)
class Click:
    function: str  # one of ANSWER, FORM, SAVE, REFUSE
    params: dict[str, str]


def _button(text: str, function: str, params: dict[str, str], *, dialog: bool = False) -> dict[str, Any]:
    action: dict[str, Any] = {"function": function,
                              "parameters": [{"key": k, "value": v} for k, v in params.items()]}
    if dialog:
        action["interaction"] = "OPEN_DIALOG"
    return {"text": text[:80], "onClick": {"action": action}}


def _head(message: OutgoingMessage) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    header = {"title": message.title[:200]} if message.title else None
    widgets = [{"textParagraph": {"text": to_google_chat(message.text)}}] if message.text else []
    return header, widgets


def _card(card_id: str, header: dict[str, Any] | None, widgets: list[dict[str, Any]]) -> dict[str, Any]:
    card: dict[str, Any] = {"sections": [{"widgets": widgets}]}
    if header:
        card["header"] = header
    return {"cardId": card_id[:64] or "card", "card": card}


def question_card(message: OutgoingMessage) -> dict[str, Any]:
    header, widgets = _head(message)
    shown, rest = message.buttons[:MAX_BUTTONS], message.buttons[MAX_BUTTONS:]
    if rest:
        widgets.append({"textParagraph": {"text": "\n".join(f"{i}) {b}" for i, b in enumerate(rest, MAX_BUTTONS + 1))}})
    widgets.append({"buttonList": {"buttons": [_button(label, ANSWER, {"card": message.card_id or "", "label": label})
                                               for label in shown]}})
    return _card(message.card_id or "question", header, widgets)


def credential_request(message: OutgoingMessage) -> dict[str, str] | None:
    request = message.payload.get("credential") if message.kind == "card" else None
    if not isinstance(request, dict):
        return None
    token = request.get("token")
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN:
        return None
    return {"token": token, "name": str(request.get("name") or "")[:200], "host": str(request.get("host") or "")[:200]}


def credential_card(message: OutgoingMessage, credential: dict[str, str]) -> dict[str, Any]:
    """The request card: "Enter credential" opens a dialog, "Refuse" answers at once."""
    header, widgets = _head(message)
    widgets.append({"buttonList": {"buttons": [
        _button(ENTER_LABEL, FORM, credential, dialog=True),
        _button(REFUSE_LABEL, REFUSE, {"token": credential["token"]}),
    ]}})
    return _card(message.card_id or "credential", header, widgets)


def credential_dialog(params: dict[str, str]) -> dict[str, Any]:
    """The answer to a REQUEST_DIALOG click: a dialog with one input; Save carries the token."""
    what = f"*{params['name']}*" if params.get("name") else "a credential"
    if params.get("host"):
        what += f" for `{params['host']}`"
    body = {"sections": [{"widgets": [
        {"textParagraph": {"text": f"The assistant asks for {what}. It goes to NanoClaw's vault: "
                                   "the assistant never sees it."}},
        {"textInput": {"name": VALUE_INPUT, "label": "Value", "type": "SINGLE_LINE"}},
    ]}], "fixedFooter": {"primaryButton": _button(SAVE_LABEL, SAVE, {"token": params.get("token", "")})}}
    return {"actionResponse": {"type": "DIALOG", "dialogAction": {"dialog": {"body": body}}}}


def dialog_status(text: str, ok: bool) -> dict[str, Any]:
    """The answer to a SUBMIT_DIALOG click: closes the dialog (OK) or keeps it open with the message."""
    return {"actionResponse": {"type": "DIALOG", "dialogAction": {"actionStatus": {
        "statusCode": "OK" if ok else "INVALID_ARGUMENT", "userFacingMessage": text[:500]}}}}


def answered(message: Any, outcome: str) -> dict[str, Any]:
    """The answer to a click that updates the card in place: its text kept, its buttons replaced by `outcome`."""
    cards = message.get("cardsV2") if isinstance(message, dict) else None
    kept: list[dict[str, Any]] = []
    for entry in cards if isinstance(cards, list) else []:
        card = entry.get("card") if isinstance(entry, dict) else None
        if not isinstance(card, dict):
            continue
        widgets = [w for s in card.get("sections") or [] if isinstance(s, dict) for w in s.get("widgets") or []
                   if isinstance(w, dict) and "buttonList" not in w]
        widgets.append({"textParagraph": {"text": outcome}})
        kept.append({"cardId": entry.get("cardId") or "card",
                     "card": {**({"header": card["header"]} if "header" in card else {}),
                              "sections": [{"widgets": widgets}]}})
    return {"actionResponse": {"type": "UPDATE_MESSAGE"}, "cardsV2": kept} if kept else \
        {"actionResponse": {"type": "UPDATE_MESSAGE"}, "text": outcome}


def parse_click(event: dict[str, Any]) -> Click | None:
    """The function and parameters of a CARD_CLICKED event (both event formats Chat sends)."""
    common = event.get("common") if isinstance(event.get("common"), dict) else {}
    function = common.get("invokedFunction")
    params = common.get("parameters")
    action = event.get("action")
    if not isinstance(function, str) and isinstance(action, dict):
        function = action.get("actionMethodName")
        params = {p.get("key"): p.get("value") for p in action.get("parameters") or [] if isinstance(p, dict)}
    if function not in (ANSWER, FORM, SAVE, REFUSE) or not isinstance(params, dict):
        return None
    clean = {str(k): v for k, v in params.items() if isinstance(v, str)}
    if function == ANSWER and not clean.get("card"):
        return None
    if function != ANSWER and not (clean.get("token") and len(clean["token"]) <= MAX_TOKEN):
        return None
    return Click(function, clean)


def take_value(event: dict[str, Any]) -> str | None:
    """The dialog's typed value, removed from the event as it is read."""
    common = event.get("common")
    inputs = common.get("formInputs") if isinstance(common, dict) else None
    field = inputs.pop(VALUE_INPUT, None) if isinstance(inputs, dict) else None
    try:
        value = field["stringInputs"]["value"][0]
    except (KeyError, IndexError, TypeError):
        return None
    return value.strip() or None if isinstance(value, str) else None
