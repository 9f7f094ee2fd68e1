"""A burst of requests cannot starve the API of worker threads: requests beyond the admission limit wait on the event
loop until an admitted one starts its response, a streamed response gives its place back when it starts, and GET
requests read SQLite without queueing behind a writer (the 200-gateway rollout stalled 30 s on both)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from sqlmodel import Session, text
from starlette.types import Message, Receive, Scope, Send

from cloud.api.admission import AdmissionLimit
from cloud.db.engine import make_engine, read_mostly

T = TypeVar("T")


class BlockingApp:
    """An ASGI app whose requests wait until released, then answer (or start a stream that never ends)."""

    def __init__(self) -> None:
        self.entered: list[str] = []
        self.release: dict[str, asyncio.Event] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        self.entered.append(path)
        await self.release.setdefault(path, asyncio.Event()).wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if path.startswith("/stream"):
            await asyncio.Event().wait()  # a stream (the dashboard's /ui/events) stays open
        await send({"type": "http.response.body", "body": b"ok"})


async def _request(app: AdmissionLimit, path: str, sent: list[Message]) -> None:
    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    await app({"type": "http", "path": path, "method": "GET", "headers": []}, receive, send)


def _run(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """asyncio.run in a thread of its own: the browser tests leave an event loop running in the main thread."""
    out: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            out.append(asyncio.run(scenario()))
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    if errors:
        raise errors[0]
    return out[0]


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_requests_beyond_the_limit_wait_until_an_admitted_response_starts() -> None:
    async def scenario() -> None:
        inner = BlockingApp()
        app = AdmissionLimit(inner, limit=3)  # two places for pages, one for bulk downloads
        sent: list[Message] = []
        tasks = [asyncio.create_task(_request(app, f"/r{i}", sent)) for i in range(3)]
        await _settle()
        assert inner.entered == ["/r0", "/r1"] and app.waiting == 1
        inner.release.setdefault("/r1", asyncio.Event()).set()
        await _settle()
        assert inner.entered == ["/r0", "/r1", "/r2"] and app.waiting == 0
        for path in ("/r0", "/r2"):
            inner.release.setdefault(path, asyncio.Event()).set()
        await asyncio.gather(*tasks)
        assert sum(1 for m in sent if m["type"] == "http.response.body") == 3

    _run(scenario)


def test_a_stream_gives_its_place_back_when_it_starts() -> None:
    async def scenario() -> None:
        inner = BlockingApp()
        app = AdmissionLimit(inner, limit=2)  # one place for pages
        sent: list[Message] = []
        inner.release["/stream"] = asyncio.Event()
        inner.release["/stream"].set()
        stream = asyncio.create_task(_request(app, "/stream", sent))
        await _settle()
        after = asyncio.create_task(_request(app, "/after", sent))
        await _settle()
        assert inner.entered == ["/stream", "/after"]
        inner.release["/after"].set()
        await after
        stream.cancel()

    _run(scenario)


def test_a_failing_request_gives_its_place_back() -> None:
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    async def scenario() -> None:
        app = AdmissionLimit(failing, limit=2)
        for _ in range(3):  # would wait forever on the second if the first kept its place
            try:
                await asyncio.wait_for(_request(app, "/x", []), timeout=10)
            except RuntimeError:
                pass

    _run(scenario)


def test_a_fleet_downloading_does_not_hold_back_a_page() -> None:
    async def scenario() -> None:
        inner = BlockingApp()
        app = AdmissionLimit(inner, limit=4)
        sent: list[Message] = []
        downloads = [asyncio.create_task(_request(app, f"/api/v1/artifacts/m{i}.tflite", sent)) for i in range(10)]
        await _settle()
        assert len(inner.entered) == 1 and app.waiting == 9  # downloads use their quarter
        page = asyncio.create_task(_request(app, "/api/v1/alerts", sent))
        await _settle()
        assert inner.entered[-1] == "/api/v1/alerts"  # in at once, ahead of the queued downloads
        for path in [f"/api/v1/artifacts/m{i}.tflite" for i in range(10)] + ["/api/v1/alerts"]:
            inner.release.setdefault(path, asyncio.Event()).set()
        await asyncio.gather(page, *downloads)
        assert len(inner.entered) == 11

    _run(scenario)


def test_the_default_limit_leaves_worker_threads_spare() -> None:
    async def scenario() -> int:
        app = AdmissionLimit(BlockingApp())
        app._semaphore()
        assert app.limit is not None
        return app.limit

    assert _run(scenario) == 40 - 4  # anyio's default of 40 threads


def test_a_read_mostly_session_reads_while_another_connection_holds_the_write_lock(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with Session(engine) as session:
        session.exec(text("CREATE TABLE t (x INTEGER)"))  # type: ignore[call-overload]
        session.exec(text("INSERT INTO t VALUES (1)"))  # type: ignore[call-overload]
        session.commit()
    writer = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES (2)")
    try:
        with Session(read_mostly(engine)) as session:
            # with BEGIN IMMEDIATE this waits for the busy timeout (30 s) and fails "database is locked"
            assert session.exec(text("SELECT count(*) FROM t")).one()[0] == 1  # type: ignore[call-overload]
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        engine.dispose()
