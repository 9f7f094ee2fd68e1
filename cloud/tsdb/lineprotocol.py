"""InfluxDB line protocol for `reading` points: escaping, field types, one line per reading.

Tags are exactly gateway, sensor and profile; everything else is a field. Timestamps are ms.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import msgspec

from protocol.messages import Reading, TelemetryBatch

MEASUREMENT: Final = "reading"
TAGS: Final = ("gateway", "sensor", "profile")


def _fields_of(kind: type[msgspec.inspect.Type]) -> tuple[str, ...]:
    """The optional measured fields of `protocol.messages.Reading` whose value type is `kind`: a reading's fields
    are declared once, in the wire contract, and stored as they are declared there."""
    info = msgspec.inspect.type_info(Reading)
    assert isinstance(info, msgspec.inspect.StructType)
    out = []
    for field in info.fields:
        types = field.type.types if isinstance(field.type, msgspec.inspect.UnionType) else (field.type,)
        if field.name not in TAGS and any(isinstance(t, msgspec.inspect.NoneType) for t in types) \
                and any(isinstance(t, kind) for t in types):
            out.append(field.name)
    return tuple(out)


FLOAT_FIELDS: Final = _fields_of(msgspec.inspect.FloatType)  # temp_c, rh_pct, anomaly_score
INT_FIELDS: Final = _fields_of(msgspec.inspect.IntType)  # seq, battery_mv, rssi_dbm


class LineProtocolError(ValueError):
    """A value that cannot be written as line protocol (empty tag, newline, non-finite float)."""


def escape_measurement(name: str) -> str:
    """Escape a measurement name: commas and spaces."""
    _check_text(name, "measurement")
    return name.replace(",", "\\,").replace(" ", "\\ ")


def escape_tag(value: str, what: str = "tag") -> str:
    """Escape a tag key or value (also used for field keys): commas, '=' and spaces.

    InfluxDB 1.x has no escape for a backslash itself (`a\\` before a separator breaks the line), so
    values containing one are refused; gateway ids, MACs and profiles never contain one.
    """
    _check_text(value, what)
    return value.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _check_text(value: str, what: str) -> None:
    if not value:
        raise LineProtocolError(f"{what} must not be empty")
    if "\n" in value or "\r" in value:
        raise LineProtocolError(f"{what} {value!r} contains a line break")
    if "\\" in value:
        raise LineProtocolError(f"{what} {value!r} contains a backslash, which line protocol 1.x cannot escape")


def format_float(value: float) -> str:
    """A float field value; NaN and infinity have no line-protocol form."""
    if not math.isfinite(value):
        raise LineProtocolError(f"float field value {value!r} is not finite")
    return repr(float(value))


def format_int(value: int) -> str:
    """An integer field value (the `i` suffix makes InfluxDB store it as int64)."""
    return f"{int(value)}i"


@dataclass(frozen=True, slots=True)
class Point:
    """One line-protocol point; tags and fields are written in the order given."""

    measurement: str
    tags: tuple[tuple[str, str], ...]
    floats: tuple[tuple[str, float], ...]
    ints: tuple[tuple[str, int], ...]
    ts_ms: int

    def to_line(self) -> str:
        """Render the point, or raise LineProtocolError if it has no fields."""
        if not self.floats and not self.ints:
            raise LineProtocolError("a point needs at least one field")
        head = escape_measurement(self.measurement) + "".join(
            f",{escape_tag(k, 'tag key')}={escape_tag(v, f'tag {k}')}" for k, v in self.tags
        )
        body = ",".join(
            [f"{escape_tag(k, 'field key')}={format_float(v)}" for k, v in self.floats]
            + [f"{escape_tag(k, 'field key')}={format_int(v)}" for k, v in self.ints]
        )
        return f"{head} {body} {int(self.ts_ms)}"


def reading_point(gateway: str, reading: Reading) -> Point | None:
    """The `reading` point for one reading, or None when it carries no field at all."""
    floats = tuple(
        (name, float(value)) for name in FLOAT_FIELDS if (value := getattr(reading, name)) is not None
    )
    ints = tuple((name, int(value)) for name in INT_FIELDS if (value := getattr(reading, name)) is not None)
    if not floats and not ints:
        return None
    tags = (("gateway", gateway), ("sensor", reading.sensor), ("profile", reading.profile))
    return Point(MEASUREMENT, tags, floats, ints, reading.ts)


@dataclass(frozen=True, slots=True)
class Formatted:
    """Lines for a batch, and how many readings were skipped for having no fields."""

    lines: list[str]
    skipped_empty: int


def batch_lines(batch: TelemetryBatch) -> Formatted:
    """Line protocol for every reading of a telemetry batch (gateway tag from the batch)."""
    return readings_lines(batch.gateway, batch.readings)


# (gateway, sensor, profile) → the escaped start of their lines: a fleet's message carries one to three readings,
# so escaping the tags per message cost more than formatting its fields. Bounded; emptied when full.
_heads: dict[tuple[str, str, str], str] = {}
MAX_KEPT_HEADS: Final = 200_000
# temperature or humidity → its text: `repr` of a float was half the cost of a line (~0.2 µs each), and a tag's values
# are few (RAWv2 resolves 0.005 °C and 0.0025 %RH: a cold chain's range is tens of thousands of values). Bounded;
# emptied when full. ±0.0 are equal keys that print differently, so zero is never kept.
_float_texts: dict[float, str] = {}
MAX_KEPT_FLOATS: Final = 65_536


def _float_text(value: float) -> str:
    """A float's line-protocol text, kept in `_float_texts` (zero never: 0.0 and -0.0 are one key)."""
    text = repr(float(value))
    if value:
        _float_texts[value] = text
    return text


def readings_lines(gateway: str, readings: Iterable[Reading]) -> Formatted:
    """Line protocol for `readings` seen by `gateway`: the same lines as `reading_point(...).to_line()`, built on
    ingest's hot path without a Point per reading (a sensor's escaped tags are kept across batches, field keys are
    constants that need no escaping). A reading carrying all of temp_c, rh_pct, seq, battery_mv and rssi_dbm (what a
    RuuviTag gives through a gateway) is one f-string (its temperature and humidity texts kept across calls, its ints
    as the decoded struct typed them); any other shape goes field by field."""
    lines: list[str] = []
    append = lines.append
    skipped = 0
    heads = _heads
    if len(heads) > MAX_KEPT_HEADS:
        heads.clear()
    texts = _float_texts
    if len(texts) > MAX_KEPT_FLOATS:
        texts.clear()
    isfinite = math.isfinite
    for r in readings:
        # FLOAT_FIELDS and INT_FIELDS spelled out: 2x faster than looking them up by name; the property test
        # test_the_batch_fast_path_writes_exactly_the_lines_of_one_point_per_reading holds the two equal.
        temp, rh, score, seq, battery, rssi = r.temp_c, r.rh_pct, r.anomaly_score, r.seq, r.battery_mv, r.rssi_dbm
        head = heads.get((gateway, r.sensor, r.profile))
        if head is None:
            head = heads[(gateway, r.sensor, r.profile)] = (
                f"{MEASUREMENT},gateway={escape_tag(gateway, 'tag gateway')},"
                f"sensor={escape_tag(r.sensor, 'tag sensor')},profile={escape_tag(r.profile, 'tag profile')} ")
        if temp is not None and rh is not None and seq is not None and battery is not None and rssi is not None:
            if not (isfinite(temp) and isfinite(rh)):
                raise LineProtocolError(f"float field value {temp if not isfinite(temp) else rh!r} is not finite")
            if score is None:
                temp_text = texts.get(temp) or _float_text(temp)  # a call only the first time a value is seen
                rh_text = texts.get(rh) or _float_text(rh)
                append(f"{head}temp_c={temp_text},rh_pct={rh_text},seq={seq}i,battery_mv={battery}i,rssi_dbm={rssi}i "
                       f"{r.ts}")
                continue
        fields: list[str] = []
        add = fields.append
        for name, value in (("temp_c", temp), ("rh_pct", rh), ("anomaly_score", score)):
            if value is not None:
                if not isfinite(value):
                    raise LineProtocolError(f"float field value {value!r} is not finite")
                add(f"{name}={float(value)!r}")
        for name, number in (("seq", seq), ("battery_mv", battery), ("rssi_dbm", rssi)):
            if number is not None:
                add(f"{name}={int(number)}i")
        if not fields:
            skipped += 1
            continue
        append(f"{head}{','.join(fields)} {int(r.ts)}")
    return Formatted(lines, skipped)
