"""Fleet-shaped ingest: messages/s stored by two workers from 2,000 gateways (persistent sessions, QoS 1, 1–3
readings a message), against a bare acknowledging paho subscriber on the same shared subscription."""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from subprocess import PIPE
from typing import Final

from bench.results import Result
from cloud.ingest.mqtt_link import MAX_RECEIVE_MAXIMUM
from cloud.tsdb.influx import InfluxClient
from deploy.stack import INGEST_USER, ROOT, Gateway, LocalStack
from protocol import encode
from protocol.messages import Reading, TelemetryBatch
from protocol.topics import subscription, topic

GATEWAYS: Final = 2000
MESSAGES_PER_GATEWAY: Final = 20
SENSORS_PER_GATEWAY: Final = 3  # a message carries 1–3 of them
WORKERS: Final = 2
WINDOW: Final = 20  # unacknowledged QoS 1 messages per gateway: the agent's default `max_inflight`
SESSION_EXPIRY_S: Final = 7 * 86400  # the agent's default: the broker keeps each gateway's session
KEEPALIVE_S: Final = 30  # the agent's default; PINGREQs are sent every half of it
CONNECTS_AT_ONCE: Final = 100  # connections opened concurrently (mosquitto's listen backlog is 100)
SENTINELS: Final = 8  # end markers sent after the load: each worker gets some (the broker deals them round robin)
SENTINEL_POLL_S: Final = 0.1
INGEST_RECEIVE_MAXIMUM: Final = min(5000, MAX_RECEIVE_MAXIMUM)  # an ingest worker's (its default batch size)
WAIT_S: Final = 150.0  # the longest a phase may take to deliver its load

# MQTT v5 control packet types (high nibble of the first byte)
CONNACK: Final = 2
PUBACK: Final = 4
DISCONNECT: Final = 14
PINGREQ_PACKET: Final = b"\xc0\x00"
DISCONNECT_PACKET: Final = b"\xe0\x00"  # reason 0: normal, the session is kept for its expiry
RECEIVE_MAXIMUM_PROPERTY: Final = 0x21


# -- MQTT v5 packets, built once ---------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _text(value: str) -> bytes:
    raw = value.encode()
    return len(raw).to_bytes(2, "big") + raw


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + _varint(len(body)) + body


def connect_packet(client_id: str, username: str, password: str) -> bytes:
    """CONNECT as the agent sends it: clean start off, a session that outlives the connection."""
    properties = bytes([0x11]) + SESSION_EXPIRY_S.to_bytes(4, "big")  # Session Expiry Interval
    flags = 0x80 | 0x40  # user name, password; clean start off
    body = (_text("MQTT") + bytes([5, flags]) + KEEPALIVE_S.to_bytes(2, "big") + _varint(len(properties))
            + properties + _text(client_id) + _text(username) + _text(password))
    return _packet(0x10, body)


def publish_packet(topic_name: str, packet_id: int, payload: bytes) -> bytes:
    """PUBLISH at QoS 1 with no properties."""
    return _packet(0x32, _text(topic_name) + packet_id.to_bytes(2, "big") + b"\x00" + payload)


def _read_varint(buf: bytearray, pos: int) -> tuple[int, int] | None:
    """(value, bytes used) of the variable byte integer at `pos`, or None when it is not all there yet."""
    value = shift = 0
    for used in range(1, 5):
        if pos + used > len(buf):
            return None
        byte = buf[pos + used - 1]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, used
        shift += 7
    raise ValueError("malformed remaining length")


_PROPERTY_SIZES: Final = {**dict.fromkeys((0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A), 1),
                          **dict.fromkeys((0x13, 0x21, 0x22, 0x23), 2),
                          **dict.fromkeys((0x02, 0x11, 0x18, 0x27), 4)}


def _receive_maximum(properties: bytes) -> int:
    """The server's Receive Maximum from CONNACK properties (65,535 when it sends none)."""
    pos = 0
    while pos < len(properties):
        prop = properties[pos]
        pos += 1
        if prop == RECEIVE_MAXIMUM_PROPERTY:
            return int.from_bytes(properties[pos:pos + 2], "big")
        if prop in _PROPERTY_SIZES:
            pos += _PROPERTY_SIZES[prop]
        elif prop == 0x0B:  # subscription identifier: a variable byte integer
            pos += 1 + next(i for i, b in enumerate(properties[pos:]) if not b & 0x80)
        else:  # strings and binary data; a user property is two strings
            for _ in range(2 if prop == 0x26 else 1):
                pos += 2 + int.from_bytes(properties[pos:pos + 2], "big")
    return MAX_RECEIVE_MAXIMUM


# -- the load: one event loop, one protocol object per gateway ----------------------------------------------


class GatewayLink(asyncio.Protocol):
    """One gateway's MQTT v5 connection: CONNECT, then precomputed QoS 1 PUBLISHes with at most `window`
    unacknowledged, the next ones written as PUBACKs come in (no task per gateway: everything runs in the
    protocol's callbacks)."""

    def __init__(self, connect: bytes) -> None:
        loop = asyncio.get_running_loop()
        self._connect = connect
        self.transport: asyncio.Transport | None = None
        self.connack: asyncio.Future[tuple[int, int]] = loop.create_future()  # (reason code, receive maximum)
        self.window = WINDOW
        self.inflight = 0
        self.acked = 0
        self.refused = 0  # PUBACKs carrying a failure reason code
        self.disconnect_reason: int | None = None
        self._buffer = bytearray()
        self._queue: deque[bytes] = deque()
        self._done: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self._connect)

    def connection_lost(self, exc: Exception | None) -> None:
        error = ConnectionError(f"connection lost (disconnect reason {self.disconnect_reason}): {exc}")
        for future in (self.connack, self._done):
            if future is not None and not future.done():
                future.set_exception(error)

    def publish(self, packets: Sequence[bytes]) -> asyncio.Future[None]:
        """Send `packets` within the window; the future is done when every one of them is acknowledged."""
        self._done = asyncio.get_running_loop().create_future()
        self._queue.extend(packets)
        self._fill()
        return self._done

    def _fill(self) -> None:
        room = min(self.window - self.inflight, len(self._queue))
        if room > 0 and self.transport is not None:
            self.transport.write(b"".join(self._queue.popleft() for _ in range(room)))
            self.inflight += room
        if not self.inflight and not self._queue and self._done is not None and not self._done.done():
            self._done.set_result(None)

    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        buf += data
        pos = 0
        while pos + 2 <= len(buf):
            length = _read_varint(buf, pos + 1)
            if length is None:
                break
            start = pos + 1 + length[1]
            end = start + length[0]
            if end > len(buf):
                break
            kind = buf[pos] >> 4
            if kind == PUBACK:
                self.inflight -= 1
                self.acked += 1
                if length[0] > 2 and buf[start + 2] >= 0x80:
                    self.refused += 1
            elif kind == CONNACK and not self.connack.done():
                props = _read_varint(buf, start + 2)
                assert props is not None
                first = start + 2 + props[1]
                self.window = min(WINDOW, _receive_maximum(bytes(buf[first:first + props[0]])))
                self.connack.set_result((buf[start + 1], self.window))
            elif kind == DISCONNECT:
                self.disconnect_reason = buf[start] if length[0] else 0
            pos = end
        del buf[:pos]
        self._fill()

    def ping(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(PINGREQ_PACKET)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(DISCONNECT_PACKET)
            self.transport.close()


@dataclass
class Load:
    """Every gateway's PUBLISH packets (gap-free batch seqs from 1, packet ids from 1) and what they carry."""

    packets: list[list[bytes]]  # per gateway
    sentinels: list[bytes]  # gateway 0's last messages, sent once the load is acknowledged
    sentinel_sensor: str
    messages: int  # load + sentinels
    readings: int  # load + sentinels


def _sensor(gateway_index: int, sensor_index: int) -> str:
    return f"c2:01:{gateway_index // 256:02x}:{gateway_index % 256:02x}:00:{sensor_index:02x}"


def build_load(gateways: list[Gateway], messages_per_gateway: int, first_ts: int) -> Load:
    """Message j of gateway g: readings of its first 1–3 sensors (varying with g and j) at one second, as an agent
    flushing often sends; each sensor's own seq counts up without gaps."""
    packets: list[list[bytes]] = []
    readings = 0
    for g, gw in enumerate(gateways):
        name = topic(gw.gateway_id, "telemetry")
        sensor_seq = [0] * SENSORS_PER_GATEWAY
        own: list[bytes] = []
        for j in range(messages_per_gateway):
            ts = first_ts + j * 1000 + g % 1000
            batch: list[Reading] = []
            for s in range(1 + (g * 7 + j) % SENSORS_PER_GATEWAY):
                sensor_seq[s] += 1
                batch.append(Reading(sensor=_sensor(g, s), ts=ts, profile="chilled", seq=sensor_seq[s],
                                     temp_c=round(3.0 + (g + j + s) % 40 * 0.05, 2), rh_pct=80.0,
                                     battery_mv=2950, rssi_dbm=-70))
            readings += len(batch)
            own.append(publish_packet(name, j + 1, encode(TelemetryBatch(gateway=gw.gateway_id, seq=j + 1,
                                                                         sent_at=ts, readings=batch))))
        packets.append(own)
    first = gateways[0].gateway_id
    sentinel_sensor = _sensor(0, 0xFF)
    sentinels = []
    for i in range(SENTINELS):
        seq = messages_per_gateway + 1 + i
        reading = Reading(sensor=sentinel_sensor, ts=first_ts + i, profile="chilled", seq=i + 1, temp_c=3.0,
                          rh_pct=80.0, battery_mv=2950, rssi_dbm=-70)
        sentinels.append(publish_packet(topic(first, "telemetry"), seq, encode(
            TelemetryBatch(gateway=first, seq=seq, sent_at=first_ts + i, readings=[reading]))))
    return Load(packets, sentinels, sentinel_sensor, messages=len(gateways) * messages_per_gateway + SENTINELS,
                readings=readings + SENTINELS)


async def connect_all(gateways: list[Gateway], port: int) -> list[GatewayLink]:
    """Open every gateway's connection (at most CONNECTS_AT_ONCE at a time); raises if the broker refuses one."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECTS_AT_ONCE)

    async def one(gw: Gateway) -> GatewayLink:
        async with gate:
            _transport, link = await loop.create_connection(
                lambda: GatewayLink(connect_packet(gw.gateway_id, gw.gateway_id, gw.password)), "127.0.0.1", port)
            reason, _window = await asyncio.wait_for(link.connack, 30)
            if reason:
                raise RuntimeError(f"broker refused gateway {gw.gateway_id}: CONNACK reason {reason:#x}")
            return link

    return list(await asyncio.gather(*(one(gw) for gw in gateways)))


async def keep_alive(links: list[GatewayLink]) -> None:
    while True:
        await asyncio.sleep(KEEPALIVE_S / 2)
        for link in links:
            link.ping()


async def publish_load(links: list[GatewayLink], load: Load) -> tuple[float, float]:
    """Publish the load from every gateway at once, then the sentinels; (start, every load message acknowledged
    by the broker), in time.monotonic() seconds."""
    started = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(link.publish(p) for link, p in zip(links, load.packets, strict=True))),
                           WAIT_S)
    acknowledged = time.monotonic()
    await asyncio.wait_for(links[0].publish(load.sentinels), WAIT_S)
    refused = sum(link.refused for link in links)
    if refused:
        raise RuntimeError(f"the broker refused {refused} PUBLISHes (PUBACK reason codes)")
    return started, acknowledged


# -- the reference: a bare paho subscriber, in its own process -----------------------------------------------


def reference_subscriber(port: int, password: str, expected: int) -> None:
    """Subscribe to the telemetry shared subscription like an ingest worker (MQTT v5, QoS 1, the same receive
    maximum) and only acknowledge (paho's automatic PUBACK). Prints `ready` once subscribed, then `<received>
    <time.monotonic() of the expected-th message>` (CLOCK_MONOTONIC: comparable across processes on Linux)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    received = 0
    last = 0.0
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-reference", protocol=MQTTProtocolVersion.MQTTv5)
    client.username_pw_set(INGEST_USER, password)

    def on_connect(c: mqtt.Client, _u: object, _f: object, _reason: object, _p: object) -> None:
        c.subscribe(subscription("telemetry"), qos=1)

    def on_subscribe(_c: mqtt.Client, _u: object, _mid: int, _codes: object, _p: object) -> None:
        print("ready", flush=True)

    def on_message(c: mqtt.Client, _u: object, _m: mqtt.MQTTMessage) -> None:
        nonlocal received, last
        received += 1
        if received == expected:
            last = time.monotonic()
            c.disconnect()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.ReceiveMaximum = INGEST_RECEIVE_MAXIMUM
    # Its session ends with the connection (expiry 0): it must not stay in the share group once ingest starts.
    client.connect("127.0.0.1", port, keepalive=KEEPALIVE_S, clean_start=True, properties=props)
    client.loop_forever()
    print(received, last, flush=True)


class ReferenceProcess:
    """The reference subscriber in a process of its own (not sharing the load generator's interpreter lock)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, port: int, password: str, expected: int) -> ReferenceProcess:
        code = (f"from bench.fleet import reference_subscriber; import os; "
                f"reference_subscriber({port}, os.environ['COLDWATCH_BENCH_PASSWORD'], {expected})")
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, cwd=ROOT, stdout=PIPE,
                                                    env=os.environ | {"COLDWATCH_BENCH_PASSWORD": password})
        return cls(proc)

    async def line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        try:
            raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            raise TimeoutError(f"no word from the reference subscriber in {timeout:.0f} s") from None
        if not raw:
            raise RuntimeError(f"the reference subscriber exited ({await self.proc.wait()})")
        return raw.decode().strip()

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()


# -- ingest's end ----------------------------------------------------------------------------------------------


def _count(influx: InfluxClient, sensor: str | None = None) -> int:
    where, binds = ("WHERE sensor = $sensor", {"sensor": sensor}) if sensor else ("", {})
    series = influx.query(f"SELECT count(rssi_dbm) FROM reading {where}", binds)
    rows = series[0].rows() if series else []
    return int(rows[0]["count"]) if rows else 0


def wait_stored(influx: InfluxClient, load: Load) -> tuple[float, int]:
    """(when the load was stored, readings stored): the sentinels are written with the last batch of each worker
    (a worker writes in the order it receives), so polling for them is cheap and exact to SENTINEL_POLL_S; the
    whole count is then checked, and polled every 0.5 s while short."""
    deadline = time.monotonic() + WAIT_S
    while _count(influx, load.sentinel_sensor) < SENTINELS and time.monotonic() < deadline:
        time.sleep(SENTINEL_POLL_S)
    stored_at = time.monotonic()
    stored = _count(influx)
    while stored < load.readings and time.monotonic() < deadline:
        time.sleep(0.5)
        stored, stored_at = _count(influx), time.monotonic()
    return stored_at, stored


def wait_subscribed(stack: LocalStack, workers: int, timeout: float = 60.0) -> None:
    """Until every ingest worker logged its subscription."""
    deadline = time.monotonic() + timeout
    logs = [stack.workdir / "logs" / f"ingest-{i}.log" for i in range(1, workers + 1)]
    while not all(p.exists() and "mqtt subscribed" in p.read_text(errors="replace") for p in logs):
        if time.monotonic() > deadline:
            raise RuntimeError(f"ingest workers not subscribed after {timeout:.0f} s; see {stack.workdir}/logs")
        time.sleep(0.1)


def ingest_log_problems(stack: LocalStack, workers: int) -> list[str]:
    """The workers' WARNING and ERROR lines (rejected messages, write failures, disconnects)."""
    lines: list[str] = []
    for i in range(1, workers + 1):
        text = (stack.workdir / "logs" / f"ingest-{i}.log").read_text(errors="replace")
        lines += [f"ingest-{i}: {line}" for line in text.splitlines()
                  if "level=WARNING" in line or "level=ERROR" in line or "Traceback" in line]
    return lines


# -- the bench -------------------------------------------------------------------------------------------------


@dataclass
class Figures:
    reference_rate: float
    reference_offered: float
    ingest_rate: float
    ingest_offered: float
    messages: int
    readings: int
    stored: int


def _say(line: str) -> None:
    print(f"    fleet: {line}", file=sys.stderr, flush=True)


async def _phases(stack: LocalStack, load: Load) -> Figures:
    assert stack.mosquitto is not None and stack.influxd is not None
    t0 = time.monotonic()
    links = await connect_all(stack.gateways, stack.mosquitto.port)
    _say(f"{len(links)} gateways connected in {time.monotonic() - t0:.1f} s (persistent sessions, window "
         f"{links[0].window})")
    pinger = asyncio.create_task(keep_alive(links))
    try:
        # The reference first, alone on the shared subscription: ingest is not started yet.
        reference = await ReferenceProcess.start(stack.mosquitto.port, stack.ingest_password, load.messages)
        try:
            if (said := await reference.line(60)) != "ready":
                raise RuntimeError(f"the reference subscriber said {said!r}")
            started, acknowledged = await publish_load(links, load)
            received_text, last_text = (await reference.line(WAIT_S)).split()
        finally:
            await reference.stop()
        received, last = int(received_text), float(last_text)
        if received != load.messages:
            raise RuntimeError(f"the reference subscriber got {received} of {load.messages} messages")
        reference_rate = load.messages / (last - started)
        reference_offered = (load.messages - SENTINELS) / (acknowledged - started)
        _say(f"reference: {reference_rate:,.0f} messages/s received; offered {reference_offered:,.0f} messages/s "
             f"(load acknowledged by the broker in {acknowledged - started:.2f} s, received in "
             f"{last - started:.2f} s)")

        # Ingest: the same packets again (the reference stored nothing), through the real workers.
        await asyncio.to_thread(stack.start_ingest, WORKERS)
        await asyncio.to_thread(wait_subscribed, stack, WORKERS)
        with InfluxClient(url=stack.influxd.url, database=stack.influx_db) as influx:
            started, acknowledged = await publish_load(links, load)
            stored_at, stored = await asyncio.to_thread(wait_stored, influx, load)
        ingest_rate = load.messages / (stored_at - started)
        ingest_offered = (load.messages - SENTINELS) / (acknowledged - started)
        _say(f"ingest: {ingest_rate:,.0f} messages/s stored ({stored:,} of {load.readings:,} readings in "
             f"{stored_at - started:.2f} s); offered {ingest_offered:,.0f} messages/s (acknowledged in "
             f"{acknowledged - started:.2f} s)")
    finally:
        pinger.cancel()
        for link in links:
            link.close()
        await asyncio.sleep(0.2)
    return Figures(reference_rate, reference_offered, ingest_rate, ingest_offered, load.messages, load.readings,
                   stored)


def _raise_open_files(wanted: int) -> None:
    """2,000 connections need more descriptors than a default soft limit of 1,024 (here and in mosquitto, which
    inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard),
                                                    hard))


def fleet_messages(gateways: int = GATEWAYS, messages_per_gateway: int = MESSAGES_PER_GATEWAY) -> list[Result]:
    """Messages/s stored through two ingest workers from `gateways` gateways each publishing `messages_per_gateway`
    batches of 1–3 readings at once (QoS 1, window WINDOW), against a bare acknowledging paho subscriber on the same
    shared subscription fed the same packets in the same run; every reading is checked to be stored once."""
    _raise_open_files(2 * gateways + 1024)
    fleet = [Gateway(f"fleet-{i:04d}", i, [], udp_port=0, metrics_port=0) for i in range(gateways)]
    with tempfile.TemporaryDirectory(prefix="coldwatch-bench-") as tmp:
        stack = LocalStack(workdir=Path(tmp), gateways=fleet, say=lambda _line: None)
        try:
            t0 = time.monotonic()
            stack.start_infra()
            t1 = time.monotonic()
            stack.provision()
            t2 = time.monotonic()
            # Stamped as live data ending a minute ago: no reading is in the future when ingest checks it.
            live = int(time.time() * 1000) - (messages_per_gateway + 60) * 1000
            load = build_load(fleet, messages_per_gateway, first_ts=live)
            _say(f"broker and influxd with {gateways:,} accounts in {t1 - t0:.1f} s; provisioned in {t2 - t1:.1f} s; "
                 f"{load.messages:,} messages ({load.readings:,} readings) built in {time.monotonic() - t2:.1f} s")
            figures = asyncio.run(_phases(stack, load))
            problems = ingest_log_problems(stack, WORKERS)
            for line in problems[:20]:
                _say(line)
            if problems:
                _say(f"{len(problems)} warning/error lines in the ingest logs")
        finally:
            stack.stop()
    if figures.stored != figures.readings:
        raise RuntimeError(f"ingest stored {figures.stored:,} readings of {figures.readings:,} sent")
    shape = (f"{gateways:,} gateways × {messages_per_gateway} messages + {SENTINELS} end markers = "
             f"{figures.messages:,} messages, {figures.readings:,} readings, all stored once; offered "
             f"{figures.ingest_offered:,.0f} messages/s while ingest ran")
    return [Result("ingest_fleet_messages", figures.ingest_rate, "messages/s",
                   f"bare paho subscriber, same shared subscription, acks only (load offered at "
                   f"{figures.reference_offered:,.0f} messages/s)", figures.reference_rate,
                   higher_is_better=True, note=shape),
            Result("ingest_fleet_offered", figures.reference_offered, "messages/s",
                   "bare paho subscriber's rate from the same load (the load must be ≥ 2×)", figures.reference_rate,
                   higher_is_better=True)]


def run() -> list[Result]:
    return fleet_messages()
