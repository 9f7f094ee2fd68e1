"""InfluxQL identifier quoting and query-result parsing of the InfluxDB adapter (no server needed)."""

from __future__ import annotations

import json

import httpx
import pytest

from cloud.tsdb.influx import InfluxClient, InfluxRejected, InfluxUnavailable, quote_ident


def test_plain_identifier_is_double_quoted() -> None:
    assert quote_ident("reading") == '"reading"'


def test_quotes_and_backslashes_are_escaped() -> None:
    assert quote_ident('we"ird') == '"we\\"ird"'
    assert quote_ident("back\\slash") == '"back\\\\slash"'
    assert quote_ident('x" OR 1=1 --') == '"x\\" OR 1=1 --"'


@pytest.mark.parametrize("bad", ["", "a\nb", "nul\0"])
def test_unusable_identifiers_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        quote_ident(bad)


def _client(handler: httpx.MockTransport) -> InfluxClient:
    return InfluxClient(url="http://influx.invalid", database="db", token="tkn", transport=handler)


def test_token_header_params_and_result_rows() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"results": [{"statement_id": 0, "series": [
            {"name": "reading", "columns": ["time", "temp_c"], "values": [[1, 2.5]]}]}]})

    rows = _client(httpx.MockTransport(handle)).query('SELECT * FROM "reading" WHERE "sensor" = $s', {"s": "x'y"})
    assert rows[0].rows() == [{"time": 1, "temp_c": 2.5}]
    request = seen[0]
    assert request.headers["Authorization"] == "Token tkn"
    assert json.loads(request.url.params["params"]) == {"s": "x'y"}
    assert request.url.params["epoch"] == "ms"


def test_status_codes_map_to_typed_errors() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        code = 400 if request.url.path == "/write" else 503
        return httpx.Response(code, json={"error": "unable to parse"})

    client = _client(httpx.MockTransport(handle))
    with pytest.raises(InfluxRejected) as rejected:
        client.write(["bad line"])
    assert rejected.value.status == 400 and "unable to parse" in rejected.value.message
    with pytest.raises(InfluxUnavailable):
        client.ping()


def test_error_inside_a_query_result_is_rejected() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"results": [{"statement_id": 0, "error": "database not found: db"}]})

    with pytest.raises(InfluxRejected, match="database not found"):
        _client(httpx.MockTransport(handle)).query("SELECT 1")


def test_repr_hides_credentials() -> None:
    client = InfluxClient(url="http://h:1", database="d", username="u", password="s3cret-pw")
    assert "s3cret-pw" not in repr(client)


@pytest.mark.parametrize("setting", [None, "false", "true"])
def test_writes_are_plain_text_unless_gzip_is_set(setting: str | None) -> None:
    import gzip

    from cloud.config import load_settings
    from cloud.tsdb.influx import influx_from_settings

    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    env = {} if setting is None else {"COLDWATCH_INFLUX_GZIP": setting}
    settings = load_settings(env)
    client = influx_from_settings(settings)
    client._http.close()
    client._http = httpx.Client(base_url=client.url, transport=httpx.MockTransport(handle))
    client.write(["reading,sensor=a temp_c=1.5 1", "reading,sensor=b temp_c=2.5 1"])
    request = seen[0]
    body = request.content
    if setting == "true":
        assert request.headers["Content-Encoding"] == "gzip"
        body = gzip.decompress(body)
    else:
        assert "Content-Encoding" not in request.headers
    assert body == b"reading,sensor=a temp_c=1.5 1\nreading,sensor=b temp_c=2.5 1\n"
    assert request.url.params["precision"] == "ms"


def test_a_write_larger_than_influxds_body_limit_goes_in_requests_below_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import cloud.tsdb.influx as influx

    bodies: list[bytes] = []

    def handle(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(204)

    monkeypatch.setattr(influx, "MAX_WRITE_BYTES", 1000)
    lines = [f"reading,sensor=s{i:03d} temp_c={i}.5 {i}" for i in range(300)]
    _client(httpx.MockTransport(handle)).write(lines)
    assert len(bodies) > 1 and all(len(b) <= 1000 for b in bodies)
    assert b"".join(bodies).decode().splitlines() == lines  # every line once, in order
