"""The answer of the running turn while the model writes it: written to `partials` for the host to show live.

Providers call `AnswerStream.update(text)` with the whole answer so far. The
first text is written at once (time to first visible text is what a person
feels); later ones at most every `interval`, the last one always. What is
written is what the person may see: `<internal>` notes are hidden, even
half-typed ones. Partials are best effort: the final `chat` row carries the
stream id and is the answer that counts.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Callable

from nanoclaw.protocol.formatting import strip_internal

_TAG = "<internal>"
INTERVAL = 0.03  # seconds between writes of one answer: ~30 updates a second are smooth and cheap


def visible(text: str) -> str:
    """What a person may see of an answer being written: no `<internal>` notes, no half-typed opening tag."""
    text = strip_internal(text)
    lowered = text.lower()
    for n in range(len(_TAG) - 1, 0, -1):
        if lowered.endswith(_TAG[:n]):
            return text[:-n].rstrip()
    return text


class AnswerStream:
    def __init__(self, write: Callable[[str, int | None, str], None], ring: Callable[[], None],
                 interval: float = INTERVAL) -> None:
        self._write = write  # (stream id, in_reply_to, text): RunnerEnd.write_partial
        self._ring = ring
        self.interval = interval
        self.stream_id = uuid.uuid4().hex
        self.in_reply_to: int | None = None
        self.text = ""  # the latest visible text given
        self._written = ""
        self._last_write = 0.0
        self._flush: asyncio.TimerHandle | None = None

    def begin(self, in_reply_to: int | None) -> None:
        """A turn starts: a fresh answer."""
        self._cancel()
        self.stream_id = uuid.uuid4().hex
        self.in_reply_to = in_reply_to
        self.text = self._written = ""

    def update(self, text: str) -> None:
        """The whole answer so far (providers call this as tokens arrive; cheap to call often)."""
        shown = visible(text)
        if shown == self.text:
            return
        self.text = shown
        wait = self._last_write + self.interval - time.monotonic()
        if wait <= 0:
            self._emit()
        elif self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(wait, self._emit)

    def take(self) -> str | None:
        """The id of the answer shown so far (None if nothing was), for its final row; a new answer begins."""
        self._cancel()
        shown = self.stream_id if self._written else None
        self.begin(self.in_reply_to)
        return shown

    def _emit(self) -> None:
        self._flush = None
        if self.text == self._written or not self.text:
            return
        self._write(self.stream_id, self.in_reply_to, self.text)
        self._written = self.text
        self._last_write = time.monotonic()
        self._ring()

    def _cancel(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
