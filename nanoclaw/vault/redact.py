"""Keeping secret values out of what an agent reads back (an upstream may echo the header it got)."""

from __future__ import annotations


class Redactor:
    """Replaces secret values in a byte stream, also when one is split across chunks."""

    MARK = b"[redacted by NanoClaw]"

    def __init__(self, values: list[str]) -> None:
        self.values = sorted({v.encode() for v in values if len(v) >= 4}, key=len, reverse=True)
        self.keep = max((len(v) for v in self.values), default=1) - 1
        self.carry = b""

    def text(self, value: str) -> str:
        return self._replace(value.encode()).decode(errors="replace")

    def feed(self, chunk: bytes) -> bytes:
        if not self.values:
            return chunk
        data = self._replace(self.carry + chunk)
        cut = max(0, len(data) - self.keep)
        self.carry = data[cut:]
        return data[:cut]

    def flush(self) -> bytes:
        tail, self.carry = self._replace(self.carry), b""
        return tail

    def _replace(self, data: bytes) -> bytes:
        for value in self.values:
            data = data.replace(value, self.MARK)
        return data
