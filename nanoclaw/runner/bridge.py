"""Inside the sandbox: 127.0.0.1:PORT → the host's proxy socket, byte for byte.

The sandbox has no network; this bridge gives clients that speak TCP (the
Claude CLI, curl, pip) a local address that leads to the host's proxy. A
pooled runner's bridge serves connections itself (`local`) until adoption:
before it, the sandbox has no route out at all.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Bridge:
    def __init__(self, socket_path: str, local: Handler | None = None) -> None:
        self.socket_path = socket_path
        self.local = local  # serves new connections while set (a pooled runner before adoption)
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self.server = await asyncio.start_server(self._handle, host, port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    def forward(self) -> None:
        """From now on every new connection goes to the host's proxy."""
        self.local = None

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.local is not None:
            await self.local(client_reader, client_writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(self.socket_path)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, up_writer), _pipe(up_reader, client_writer))
        for writer in (up_writer, client_writer):
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # half-close: the other direction may still be talking
    except (ConnectionError, OSError):
        writer.close()
