"""The updater fetches artifacts (and sends its token) only where it should: the configured API origin, compared
after parsing; never to lookalike hosts or user-info tricks; never through a redirect. A real local HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.updater import artifact_fetch, check_artifact_url
from models.runtime.manifest import ModelRejected

ORIGIN = "https://cloud.example:8443"


@pytest.mark.parametrize("url", [
    "http://localhost.evil.example/m.tflite", "http://127.0.0.1@evil.example/m.tflite",
    "https://cloud.example:8443@evil.example/m.tflite", "https://cloud.example.evil.example:8443/m.tflite",
    "https://cloud.example/m.tflite", "http://cloud.example:8443/m.tflite", "https://evil.example:8443/m.tflite",
    "ftp://cloud.example:8443/m.tflite", "https://user:pw@cloud.example:8443/m.tflite",
])
def test_anything_but_the_configured_origin_is_refused(url: str) -> None:
    with pytest.raises(ModelRejected):
        check_artifact_url(url, ORIGIN)


def test_the_configured_origin_passes_whatever_the_spelling() -> None:
    check_artifact_url("https://CLOUD.example:8443/api/v1/models/a/m.tflite", ORIGIN)
    check_artifact_url("https://cloud.example/m.tflite", "https://cloud.example:443")


def test_without_an_origin_lookalikes_of_loopback_are_refused_and_loopback_passes() -> None:
    for url in ("http://localhost.evil.example/m", "http://127.0.0.1@evil.example/m", "http://127.0.0.1.evil.example/m"):
        with pytest.raises(ModelRejected):
            check_artifact_url(url, None)
    check_artifact_url("http://127.0.0.1:8000/m", None)
    check_artifact_url("https://anything.example/m", None)


@given(st.text(max_size=60))
def test_any_text_is_refused_or_is_the_origin(text: str) -> None:
    url = f"https://{text}"
    try:
        check_artifact_url(url, ORIGIN)
    except ModelRejected:
        return
    assert url.lower().startswith(("https://cloud.example:8443/", "https://cloud.example:8443?",
                                   "https://cloud.example:8443#")) or url.lower() == "https://cloud.example:8443"


class _Server(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        _Server.seen.append((self.path, self.headers.get("Authorization")))
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_address[1]}/stolen")
            self.end_headers()
            return
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"model bytes")

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Server.seen = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_a_redirect_is_not_followed_and_the_token_goes_nowhere_else(server: str) -> None:
    fetch = artifact_fetch(server)
    assert fetch(f"{server}/ok", "secret-token") == b"model bytes"
    with pytest.raises(ModelRejected, match="redirect"):
        fetch(f"{server}/redirect", "secret-token")
    assert [path for path, _ in _Server.seen] == ["/ok", "/redirect"]
    assert all(auth == "Bearer secret-token" for _, auth in _Server.seen)
