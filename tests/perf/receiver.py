"""A receiver for the benchmarks' deliveries: answers every POST with 200 (and, given a second port, every
SMTP transaction with 250).

Run as its own process (``python -m tests.perf.receiver HTTP_PORT [SMTP_PORT]``) so its work never shares a
core's event loop with the load generator. It plays the company's systems (webhook endpoint), the company's
platform (commands) and the company's mail server: the benchmark measures the platform, not a receiver, so
this one does as little as it can (no parsing beyond framing).
"""

from __future__ import annotations

import asyncio
import ssl
import sys

OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}"


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            writer.write(OK)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def handle_smtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Just enough of RFC 5321 for a client that sends EHLO, MAIL, RCPT, DATA, QUIT (no STARTTLS, no AUTH)."""
    try:
        writer.write(b"220 receiver ESMTP\r\n")
        await writer.drain()
        while True:
            line = await reader.readuntil(b"\r\n")
            verb = line[:4].upper()
            if verb == b"EHLO":
                writer.write(b"250-receiver\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                await writer.drain()
                await reader.readuntil(b"\r\n.\r\n")
                writer.write(b"250 2.0.0 queued\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 OK\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int, smtp_port: int | None, tls: ssl.SSLContext | None = None) -> None:
    servers = [await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024, ssl=tls)]
    if smtp_port:
        servers.append(await asyncio.start_server(handle_smtp, "127.0.0.1", smtp_port, backlog=1024, limit=2**22))
    await asyncio.gather(*(server.serve_forever() for server in servers))


if __name__ == "__main__":
    # receiver HTTP_PORT [SMTP_PORT] | receiver HTTP_PORT --tls CERT KEY (HTTPS only, bench_webhook_lanes.py)
    if "--tls" in sys.argv:
        at = sys.argv.index("--tls")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(sys.argv[at + 1], sys.argv[at + 2])
        asyncio.run(main(int(sys.argv[1]), None, context))
    else:
        asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else None))
