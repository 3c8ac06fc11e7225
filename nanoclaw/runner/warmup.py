"""The model API a pooled runner's agent warms up against: answered inside the sandbox, nothing goes out.

Claude Code does a good part of its work for a conversation on that
conversation's first turn (skills, memory, system prompt, hooks). A pooled
runner, before any session exists, runs that first turn against this tiny
stand-in, which the bridge serves in place of the host's proxy until the
sandbox is adopted. The exchange (WARMUP_PROMPT and WARMUP_REPLY) stays at the
start of the conversation; the session's first real message is its second
turn. Before adoption the sandbox has no route out at all.
"""

from __future__ import annotations

import asyncio
import json

import h11

WARMUP_PROMPT = ("<internal>NanoClaw started this conversation ahead of its first message, which follows. "
                 "Nothing to answer yet.</internal>")
WARMUP_REPLY = "<internal>Ready.</internal>"
_MAX_BODY = 8 * 1024 * 1024


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Serve one connection: every request gets the canned reply in the shape its path asks for."""
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                if not data:
                    return
                continue
            if not isinstance(event, h11.Request):
                return
            path = event.target.decode("latin-1").split("?", 1)[0]
            body = await _body(conn, reader)
            status, content_type, payload = _reply(path, body)
            writer.write(conn.send(h11.Response(status_code=status, headers=[
                ("content-type", content_type), ("content-length", str(len(payload))), ("connection", "close"),
            ])) or b"")
            writer.write(conn.send(h11.Data(data=payload)) or b"")
            writer.write(conn.send(h11.EndOfMessage()) or b"")
            await writer.drain()
            return
    except (h11.ProtocolError, ConnectionError, ValueError):
        return
    finally:
        writer.close()


async def _body(conn: h11.Connection, reader: asyncio.StreamReader) -> bytes:
    chunks, size = [], 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("closed mid-request")
            conn.receive_data(data)
        elif isinstance(event, h11.Data):
            size += len(event.data)
            if size > _MAX_BODY:
                raise ValueError("request too large")
            chunks.append(bytes(event.data))
        else:
            return b"".join(chunks)


def _reply(path: str, body: bytes) -> tuple[int, str, bytes]:
    try:
        request = json.loads(body) if body else {}
    except ValueError:
        request = {}
    if path.endswith("/count_tokens"):
        return 200, "application/json", json.dumps({"input_tokens": 1}).encode()
    if not path.endswith("/v1/messages"):
        return 404, "application/json", json.dumps({"type": "error", "error": {
            "type": "not_found_error", "message": "not available before adoption"}}).encode()
    model = str(request.get("model") or "warmup")
    message = {"id": "msg_warmup", "type": "message", "role": "assistant", "model": model,
               "content": [{"type": "text", "text": WARMUP_REPLY}], "stop_reason": "end_turn",
               "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}}
    if not request.get("stream"):
        return 200, "application/json", json.dumps(message).encode()
    events = [
        ("message_start", {"type": "message_start", "message": {**message, "content": [], "stop_reason": None,
                                                                 "usage": {"input_tokens": 1, "output_tokens": 0}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": WARMUP_REPLY}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 1}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    stream = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)
    return 200, "text/event-stream", stream.encode()
