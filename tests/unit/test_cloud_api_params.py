"""Readings API parameter parsing: MAC normalisation, times, ranges (no server needed)."""

from __future__ import annotations

import pytest

from cloud.api.errors import BadParameterError
from cloud.api.params import DAY_MS, normalise_sensor_id, parse_time, resolve_range


def test_mac_is_normalised() -> None:
    assert normalise_sensor_id("AA-BB-CC-DD-EE-FF") == "aa:bb:cc:dd:ee:ff"
    assert normalise_sensor_id("aa:bb:cc:dd:ee:0f") == "aa:bb:cc:dd:ee:0f"


@pytest.mark.parametrize("bad", ["aa:bb:cc", "zz:bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:ff:00", '" OR 1=1', ""])
def test_bad_mac_names_the_parameter(bad: str) -> None:
    with pytest.raises(BadParameterError) as err:
        normalise_sensor_id(bad)
    assert err.value.parameter == "sensor_id" and err.value.message.startswith("sensor_id: ")


def test_times_epoch_ms_and_iso() -> None:
    assert parse_time("1700000000000", "start") == 1_700_000_000_000
    assert parse_time("2023-11-14T22:13:20Z", "start") == 1_700_000_000_000
    assert parse_time("2023-11-15T00:13:20+02:00", "start") == 1_700_000_000_000
    assert parse_time("2023-11-15T00:13:20 02:00", "start") == 1_700_000_000_000  # unencoded '+'


@pytest.mark.parametrize("bad", ["yesterday", "2023-11-14T22:13:20", "-5", "99999999999999"])
def test_bad_times_name_the_parameter(bad: str) -> None:
    with pytest.raises(BadParameterError) as err:
        parse_time(bad, "end")
    assert err.value.parameter == "end"


def test_range_defaults_and_limits() -> None:
    now = 1_700_000_000_000
    assert resolve_range(None, None, now) == (now - DAY_MS, now)
    assert resolve_range(str(now - 5), None, now) == (now - 5, now)
    with pytest.raises(BadParameterError, match="before end"):
        resolve_range(str(now), str(now), now)
    with pytest.raises(BadParameterError, match="31 days"):
        resolve_range(str(now - 32 * DAY_MS), str(now), now)
    assert resolve_range(str(now - 31 * DAY_MS), str(now), now)[0] == now - 31 * DAY_MS
