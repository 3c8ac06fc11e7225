"""Inside the sandbox: 127.0.0.1:PORT → the host's proxy socket, byte for byte.

The sandbox has no network; this bridge gives clients that speak TCP (the
Claude CLI, curl, pip) a local address that leads to the host's proxy.
"""

from __future__ import annotations

import asyncio


async def start_bridge(socket_path: str, host: str = "127.0.0.1", port: int = 0) -> tuple[asyncio.AbstractServer, int]:
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(socket_path)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, up_writer), _pipe(up_reader, client_writer))
        for writer in (up_writer, client_writer):
            writer.close()

    server = await asyncio.start_server(handle, host, port)
    return server, server.sockets[0].getsockname()[1]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # half-close: the other direction may still be talking
    except (ConnectionError, OSError):
        writer.close()
