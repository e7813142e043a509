"""A bounded FIFO from any number of producers to one consuming task, for the relay's hot path.

``put`` never waits (a full box says so, and the caller decides); ``get`` returns at once when something is
queued. anyio's memory streams yield to the event loop on every receive, which on this path costs an extra
scheduling round per message. The bridge runs on asyncio (uvicorn), so a plain future is the wake-up signal.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")


class Mailbox(Generic[T]):
    def __init__(self, limit: int) -> None:
        self._items: deque[T] = deque()
        self._limit = limit
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: T) -> bool:
        """Queue ITEM; False when the box is full. Raises ``anyio.ClosedResourceError`` once closed."""
        if self._closed:
            raise anyio.ClosedResourceError
        if len(self._items) >= self._limit:
            return False
        self._items.append(item)
        self._wake()
        return True

    @property
    def consumer_waiting(self) -> bool:
        """The consumer is parked in ``get`` with nothing queued: it is not in the middle of an item."""
        return self._waiter is not None and not self._items

    def close(self) -> None:
        """No more puts; the consumer still gets what is queued, then the end."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> T:
        """The next item; ``anyio.EndOfStream`` once closed and empty."""
        while not self._items:
            if self._closed:
                raise anyio.EndOfStream
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()

    def __aiter__(self) -> Mailbox[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.get()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Mailbox[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
