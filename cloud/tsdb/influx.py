"""InfluxDB adapter over the 1.x HTTP API (`/write`, `/query`, `/ping`), served natively by 1.x and 3.x
and through the v1-compatibility endpoints by 2.x / Cloud. Values reach InfluxQL only as bound parameters.

Exceptions::

    InfluxError
    ├── InfluxUnavailable   connection refused / timed out, or a 5xx: retry later
    └── InfluxRejected      a 4xx or a query error: retrying the same request will not help
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import httpx

if TYPE_CHECKING:
    from cloud.config import Settings

log = logging.getLogger(__name__)

ParamValue = str | int | float | bool
MAX_ERROR_TEXT: Final = 500


# influxd 1.x refuses a request body over its `max-body-size` (25 MB by default) with 413 (with gzip the limit applies
# to the compressed body). A batch of 20,000 readings is 3–5 MB of text, but `--batch-size` allows far more: a write
# is split in halves above this.
MAX_WRITE_BYTES: Final = 8 * 1024 * 1024


class InfluxError(Exception):
    """Base of every adapter error."""


class InfluxUnavailable(InfluxError):  # noqa: N818 (names from the design)
    """InfluxDB could not be reached or answered 5xx; the request may succeed later."""


class InfluxRejected(InfluxError):  # noqa: N818
    """InfluxDB refused the request (4xx, or an error inside a query result); `status` 0 for the latter."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status
        self.message = message


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes, with backslashes and quotes escaped."""
    if not name or "\n" in name or "\r" in name or "\0" in name:
        raise ValueError(f"{name!r} cannot be an InfluxQL identifier")
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Series:
    """One series of a query result: its name, group-by tags, column names and rows."""

    name: str
    columns: list[str]
    values: list[list[Any]]
    tags: dict[str, str] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column name (group-by tags merged in)."""
        return [self.tags | dict(zip(self.columns, row, strict=True)) for row in self.values]


class InfluxClient:
    """A small synchronous client for one database. Thread-safe (httpx.Client is)."""

    def __init__(
        self,
        *,
        url: str,
        database: str,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        gzip_writes: bool = False,
    ) -> None:
        headers = {"Authorization": f"Token {token}"} if token else {}
        auth = httpx.BasicAuth(username, password or "") if username is not None else None
        self.url = url.rstrip("/")
        self.database = database
        self.gzip_writes = gzip_writes
        self._http = httpx.Client(
            base_url=self.url, headers=headers, auth=auth, timeout=timeout_s, transport=transport
        )

    def __repr__(self) -> str:
        return f"InfluxClient(url={self.url!r}, database={self.database!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    @property
    def closed(self) -> bool:
        """Whether `close` was called (a closed client cannot be used again)."""
        return self._http.is_closed

    def __enter__(self) -> InfluxClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise InfluxUnavailable(f"{method} {self.url}{path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500:
            raise InfluxUnavailable(f"{method} {self.url}{path}: HTTP {response.status_code}: {_error_text(response)}")
        if response.status_code >= 400:
            raise InfluxRejected(response.status_code, _error_text(response))
        return response

    def ping(self) -> None:
        """Return if InfluxDB answers /ping, else raise InfluxUnavailable."""
        self._send("GET", "/ping")

    def write(self, lines: Sequence[str]) -> None:
        """Write line-protocol `lines` (timestamps in ms) in one request, or in halves while the text exceeds
        MAX_WRITE_BYTES; gzip-compressed when `gzip_writes` (for an InfluxDB across a slow link: compressing cost the
        worker and influxd more CPU than a LAN saves, ingest ran 22 % slower with it on one machine;
        docs/scaling.md)."""
        if not lines:
            return
        body = ("\n".join(lines) + "\n").encode()
        if len(body) > MAX_WRITE_BYTES and len(lines) > 1:
            half = len(lines) // 2
            self.write(lines[:half])
            self.write(lines[half:])
            return
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.gzip_writes:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        self._send("POST", "/write", params={"db": self.database, "precision": "ms"}, content=body, headers=headers)

    def query(self, influxql: str, params: Mapping[str, ParamValue] | None = None) -> list[Series]:
        """Run one read-only InfluxQL statement with bound `$name` parameters; times come back in epoch ms."""
        query_params = {"db": self.database, "epoch": "ms", "q": influxql}
        if params:
            query_params["params"] = json.dumps(dict(params))
        return _series(self._send("GET", "/query", params=query_params))

    def execute(self, influxql: str, params: Mapping[str, ParamValue] | None = None) -> list[Series]:
        """Run a statement that changes state (CREATE, DROP) via POST."""
        data = {"q": influxql}
        if params:
            data["params"] = json.dumps(dict(params))
        return _series(self._send("POST", "/query", params={"db": self.database}, data=data))

    def database_exists(self) -> bool:
        """Whether this client's database exists."""
        series = self.query("SHOW DATABASES")
        return any(row and row[0] == self.database for s in series for row in s.values)

    def ensure_database(self, *, create: bool = True) -> None:
        """Make sure the database exists: CREATE DATABASE (idempotent in 1.x) or, with create=False,
        raise InfluxRejected(404) when it is missing."""
        if create:
            self.execute(f"CREATE DATABASE {quote_ident(self.database)}")
        elif not self.database_exists():
            raise InfluxRejected(404, f"database {self.database!r} does not exist")


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
        text = str(body.get("error", body)) if isinstance(body, dict) else str(body)
    except ValueError:
        text = response.text
    return text.strip()[:MAX_ERROR_TEXT] or response.reason_phrase


def _series(response: httpx.Response) -> list[Series]:
    body = response.json()
    if "error" in body:
        raise InfluxRejected(0, str(body["error"])[:MAX_ERROR_TEXT])
    out: list[Series] = []
    for result in body.get("results", []):
        if "error" in result:
            raise InfluxRejected(0, str(result["error"])[:MAX_ERROR_TEXT])
        for s in result.get("series", []):
            out.append(Series(name=s.get("name", ""), columns=s["columns"], values=s.get("values", []),
                              tags=s.get("tags") or {}))
    return out


def influx_from_settings(settings: Settings, *, timeout_s: float = 10.0) -> InfluxClient:
    """The client every process makes from its settings (URL, database, token or user and password)."""
    return InfluxClient(url=settings.influx_url, database=settings.influx_db, token=settings.influx_token,
                        username=settings.influx_username, password=settings.influx_password, timeout_s=timeout_s,
                        gzip_writes=settings.influx_gzip)
