"""The HTTP client of the provider calls: requests handed straight to kept-alive connections, each
its own httpx transport with a pool of one, leased by one request at a time.

`httpx.AsyncClient` did per request what a provider call never needs (merging the URL and headers
with the client's, an auth flow, redirect handling, and a cookie jar that parsed every response's
headers into an email message): ~100 us of CPU a request, 18% of a request's CPU in the
notifier process. `ProviderClient` builds the `httpx.Request` itself, with the headers the client
sent (the same bytes on the wire), and reads the response whole.

httpcore's connection pool walks every connection it holds whenever a request enters or a
response closes (a `poll()` of each idle socket, through anyio's socket attributes, and a count
of all connections for each idle one): with 16-64 connections that bookkeeping cost more CPU
than the requests themselves (~15% of a notifier process). A pool of one has nothing to walk.
A request waits for a free connection at most the client's pool timeout (`httpx.PoolTimeout`,
as httpx's own pool would raise), and the connection is free again once its response is closed.
"""

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx

# What `httpx.AsyncClient` put on every request.
_CLIENT_HEADERS = {
    "Accept": "*/*",
    "Accept-Encoding": "gzip, deflate",
    "Connection": "keep-alive",
    "User-Agent": f"python-httpx/{httpx.__version__}",
}


class ProviderClient:
    """POSTs to providers over `connections` leased connections; `timeout_seconds` bounds the
    connect, each read and write, and the wait for a free connection (`httpx.PoolTimeout`).
    Raises httpx's transport errors, as `httpx.AsyncClient` did."""

    def __init__(self, connections: int, timeout_seconds: float) -> None:
        self._transport = LeasedConnections(connections)
        self._timeout = httpx.Timeout(timeout_seconds).as_dict()

    async def post(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        json: Any = None,
        data: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """The response, read whole (its connection is free again when this returns)."""
        request = httpx.Request(
            "POST",
            url,
            headers={**_CLIENT_HEADERS, **headers},
            json=json,
            data=data,
            extensions={"timeout": self._timeout},
        )
        response = await self._transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def aclose(self) -> None:
        await self._transport.aclose()


class LeasedConnections(httpx.AsyncBaseTransport):
    def __init__(self, connections: int) -> None:
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self._transports = [httpx.AsyncHTTPTransport(limits=one) for _ in range(connections)]
        # The connection used last is used next: it is the one least likely to have gone idle
        # long enough for the provider to close it.
        self._free: asyncio.LifoQueue[httpx.AsyncHTTPTransport] = asyncio.LifoQueue()
        for transport in self._transports:
            self._free.put_nowait(transport)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        wait = request.extensions.get("timeout", {}).get("pool")
        try:
            async with asyncio.timeout(wait):
                transport = await self._free.get()
        except TimeoutError as exc:
            raise httpx.PoolTimeout("no provider connection free", request=request) from exc
        try:
            response = await transport.handle_async_request(request)
        except BaseException:
            self._free.put_nowait(transport)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_Leased(response.stream, lambda: self._free.put_nowait(transport)),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        for transport in self._transports:
            await transport.aclose()


class _Leased(httpx.AsyncByteStream):
    """A response's body; closing it gives its connection back."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if self._release is not None:
                self._release()
                self._release = None
