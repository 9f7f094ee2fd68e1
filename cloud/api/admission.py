"""Admission: at most as many requests in their handling phase as there are worker threads to run them, so a request
holding SQLite's lock always finds a thread to finish on.

The API's routes are sync: FastAPI runs each dependency, the endpoint and then the response's validation in anyio's
worker threads (40 by default), one after the other, and a request's SQL transaction can stay open from its first
query until its session closes after the response. SQLite lets one transaction write at a time, and every
transaction here begins IMMEDIATE (cloud/db/engine.py), so when more than 40 requests arrive at once (200 gateways
downloading a model), the threads can all be taken by requests waiting for the lock while the request holding it
waits for a thread to validate its response: nothing moves until the busy timeout (30 s). Holding back the requests
beyond the thread count on the event loop (where waiting costs nothing) until a response starts removes that cycle:
each admitted request uses at most one thread at a time, and there are more threads than admitted requests. A
streamed response (the dashboard's `/ui/events`) gives its place back when its response starts.

Bulk machine traffic (a fleet downloading model artifacts) has places of its own, a quarter of them: a member of
staff's page never queues behind a fleet's downloads, nor competes for the interpreter with 18 of them at once.
"""

from __future__ import annotations

import asyncio
from typing import Final

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SPARE_THREADS: Final = 4  # for file sends and anything else run in a worker thread after a response started
BULK_PATHS: Final = ("/api/v1/artifacts/",)  # requests a whole fleet makes at once
BULK_SHARE: Final = 4  # bulk requests get 1/BULK_SHARE of the places: fewer threads competing for the GIL with pages


class AdmissionLimit:
    """Pure ASGI middleware: HTTP requests wait (FIFO) for one of `limit` places, held until their response starts
    (or they end); `limit` None: the default thread limiter's size less SPARE_THREADS, read on the first request.
    Requests under `bulk_paths` take their places from a share of their own (a quarter, at least one)."""

    def __init__(self, app: ASGIApp, limit: int | None = None, bulk_paths: tuple[str, ...] = BULK_PATHS) -> None:
        self.app = app
        self.limit = limit
        self.bulk_paths = bulk_paths
        self._places: tuple[asyncio.Semaphore, asyncio.Semaphore] | None = None  # (interactive, bulk)
        self.waiting = 0  # requests held back now (for tests and metrics)

    def _semaphore(self, path: str = "") -> asyncio.Semaphore:
        if self._places is None:
            if self.limit is None:
                total = int(anyio.to_thread.current_default_thread_limiter().total_tokens)
                self.limit = max(2, total - SPARE_THREADS)
            bulk = max(1, self.limit // BULK_SHARE)
            self._places = (asyncio.Semaphore(max(1, self.limit - bulk)), asyncio.Semaphore(bulk))
        return self._places[1] if path.startswith(self.bulk_paths) else self._places[0]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        places = self._semaphore(scope.get("path", ""))
        self.waiting += 1
        try:
            await places.acquire()
        finally:
            self.waiting -= 1
        held = True

        def give_back() -> None:
            nonlocal held
            if held:
                held = False
                places.release()

        async def send_and_release(message: Message) -> None:
            if message["type"] == "http.response.start":
                give_back()
            await send(message)

        try:
            await self.app(scope, receive, send_and_release)
        finally:
            give_back()
