"""Bounds how much of an HTTP response body the gateway reads: a huge answer is refused, never buffered.

Contracts:
- `cap_response_body(limit)` returns an httpx2 response event hook. It runs before any of the body is
  read: a response that declares a `Content-Length` over `limit` raises `ResponseTooLarge` at once;
  any other response gets its byte stream wrapped, so that reading more than `limit` bytes off the wire
  raises `ResponseTooLarge`. Installed on a client, it covers every response: answers, HTTP errors (which
  the SDK reads whole to build its exception), redirects, model listings.
- `read_capped(response, limit)` reads a response opened with `stream=True` into memory, raising
  `ResponseTooLarge` once the decoded body passes `limit` bytes (so a compressed body cannot expand past
  it either), and always closes the response. Closing an unfinished body drops its connection.
- Memory held for one response stays below `limit` plus one network chunk.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx2


class ResponseTooLarge(Exception):
    """A response body is longer than the configured cap; `str()` says by how much, roughly."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"over {limit} bytes")
        self.limit = limit


def cap_response_body(limit: int) -> Callable[[httpx2.Response], Awaitable[None]]:
    """An httpx2 `event_hooks["response"]` entry that caps every body at `limit` bytes (see module)."""

    async def hook(response: httpx2.Response) -> None:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ResponseTooLarge(limit)
        if isinstance(response.stream, httpx2.AsyncByteStream):
            response.stream = _CappedStream(response.stream, limit)

    return hook


async def read_capped(response: httpx2.Response, limit: int) -> bytes:
    """The decoded body of a streamed `response`, at most `limit` bytes; the response is closed after."""
    body = bytearray()
    try:
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > limit:
                raise ResponseTooLarge(limit)
    finally:
        await response.aclose()
    return bytes(body)


class _CappedStream(httpx2.AsyncByteStream):
    """A response byte stream that raises `ResponseTooLarge` past `limit` bytes."""

    def __init__(self, inner: httpx2.AsyncByteStream, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > self._limit:
                raise ResponseTooLarge(self._limit)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()

    @property
    def elapsed(self) -> datetime.timedelta | None:
        """The wrapped stream's timing (httpx2 reads and sets it for `Response.elapsed`)."""
        value = getattr(self._inner, "elapsed", None)
        return value if isinstance(value, datetime.timedelta) else None

    @elapsed.setter
    def elapsed(self, value: datetime.timedelta | None) -> None:
        self._inner.elapsed = value  # type: ignore[attr-defined]
