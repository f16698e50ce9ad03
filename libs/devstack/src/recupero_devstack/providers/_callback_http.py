"""The HTTP/1.1 client the peers send their signed callbacks with: one kept-alive connection per
sender, the request written in one call, the response parsed by `httptools` (C, as uvicorn's
server side). httpx spent about two thirds of the WhatsApp peer's CPU on its callbacks (its
connection pool polls every socket it holds on each request and response); the peer answers
the API faster with this. The requests are the same bytes a provider sends: method, path and
query, `Host`, the caller's headers (signatures included), `Content-Length`, the body.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools


class CallbackFailed(Exception):
    """No answer from the receiver: refused, closed, timed out, or not HTTP."""


class _ClosedBeforeAnswer(Exception):
    """The connection ended before any byte of the response."""


@dataclass
class CallbackResponse:
    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


@dataclass
class _Reading:
    """httptools' callbacks for one response."""

    body: bytearray = field(default_factory=bytearray)
    complete: bool = False
    # HTTP/1.1 keeps the connection unless the receiver says `Connection: close` (httptools'
    # `should_keep_alive()` no longer says once the message is complete).
    closing: bool = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"connection" and value.strip().lower() == b"close":
            self.closing = True

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


class CallbackConnection:
    """One sender's connection, opened on first use and again after the receiver closed it.
    Not shared: a sender posts one callback at a time."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._origin: tuple[str, str, int] | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, url: str, content: bytes, headers: dict[str, str]) -> CallbackResponse:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or parts.hostname is None:
            raise CallbackFailed(f"not an http(s) URL: {url}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        origin = (parts.scheme, parts.hostname, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(content)}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + content
        try:
            async with asyncio.timeout(self._timeout):
                reused = self._usable(origin)
                try:
                    return await self._exchange(origin, request)
                except _ClosedBeforeAnswer:
                    if not reused:
                        raise
                    # The receiver closed the idle connection as we wrote (its keep-alive
                    # timeout): it read nothing, so the callback goes again on a new connection,
                    # as HTTP clients do. (A receiver that did apply it answers the repeat with
                    # its replay refusal.)
                    return await self._exchange(origin, request)
        except (OSError, TimeoutError, httptools.HttpParserError, _ClosedBeforeAnswer) as exc:
            self.close()
            raise CallbackFailed(f"{type(exc).__name__}: {exc}") from exc

    def _usable(self, origin: tuple[str, str, int]) -> bool:
        if self._writer is None or self._reader is None:
            return False
        if self._origin != origin or self._reader.at_eof() or self._writer.is_closing():
            self.close()
            return False
        return True

    async def _exchange(self, origin: tuple[str, str, int], request: bytes) -> CallbackResponse:
        if not self._usable(origin):
            scheme, host, port = origin
            self._reader, self._writer = await asyncio.open_connection(
                host, port, ssl=True if scheme == "https" else None
            )
            self._origin = origin
        assert self._reader is not None and self._writer is not None
        reader, writer = self._reader, self._writer
        reading = _Reading()
        parser = httptools.HttpResponseParser(reading)
        received = False
        try:
            writer.write(request)
            while not reading.complete:
                data = await reader.read(65536)
                if not data:
                    raise ConnectionResetError("the receiver closed the connection")
                received = True
                parser.feed_data(data)
        except (ConnectionResetError, BrokenPipeError) as closed:
            self.close()
            if not received:
                raise _ClosedBeforeAnswer(str(closed)) from closed
            raise
        if reading.closing or parser.get_http_version() != "1.1":
            self.close()
        return CallbackResponse(parser.get_status_code(), bytes(reading.body))

    def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        self._reader = self._writer = self._origin = None
