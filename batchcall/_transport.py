"""An httpx transport that gives each in-flight request a connection pool of its own.

httpcore's pool walks all its connections, twice, for every request that starts or ends, and
asks the kernel of each idle one whether its socket is readable; its keep-alive check counts
them all again for each idle one. At 64 connections that was 3 to 5 ms of CPU a request on
the project's 2-core machine, most of a row's cost; 64 pools of one connection each cost
1.5 ms (measured with the sandbox in another process). So `SpreadTransport` holds `size`
single-connection httpx transports, lends a free one to each request, and takes it back when
the response is closed. The client above it (headers, timeouts, error mapping) is unchanged.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable

import httpx

_ONE = httpx.Limits(max_connections=1, max_keepalive_connections=1)


class _Returned(httpx.AsyncByteStream):
    """A response's body that gives its connection back once closed."""

    def __init__(self, stream: httpx.AsyncByteStream, give_back: Callable[[], None]) -> None:
        self._stream = stream
        self._give_back: Callable[[], None] | None = give_back

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            give_back, self._give_back = self._give_back, None
            if give_back is not None:
                give_back()


class SpreadTransport(httpx.AsyncBaseTransport):
    """`size` pools of one connection; more requests at once than `size` share them."""

    def __init__(self, size: int, *, verify: ssl.SSLContext | bool = True) -> None:
        # One context for all: each loads the CA bundle, ~70 ms.
        context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify)
        self._pools = [
            httpx.AsyncHTTPTransport(verify=context, limits=_ONE) for _ in range(max(1, size))
        ]
        self._busy = [0] * len(self._pools)
        self._free = list(range(len(self._pools)))
        self._next = 0

    def _take(self) -> int:
        if self._free:
            index = self._free.pop()
        else:  # every pool is lent: queue behind one, in turn
            index = self._next = (self._next + 1) % len(self._pools)
        self._busy[index] += 1
        return index

    def _give_back(self, index: int) -> None:
        self._busy[index] -= 1
        if self._busy[index] == 0:
            self._free.append(index)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = self._take()
        try:
            response = await self._pools[index].handle_async_request(request)
        except BaseException:
            self._give_back(index)
            raise
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)  # what httpx's transport returns
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_Returned(stream, lambda: self._give_back(index)),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()
