"""MQTT 5 publisher: drains the outbox in order with a bounded in-flight window; acks rows only on PUBACK.

The session is persistent (clean_start=False, session expiry), the last will marks the gateway
offline, and reconnects back off exponentially with jitter.
"""

from __future__ import annotations

import logging
import queue
import random
import ssl
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.config import AgentConfig
from edge_agent.metrics import AgentMetrics
from edge_agent.outbox import Entry, Outbox
from protocol.codec import encode
from protocol.messages import Reported, Status
from protocol.topics import Kind, topic

log = logging.getLogger(__name__)

StatusSource = Callable[[str], Status]
"""Builds the gateway's Status for a state ('online' / 'offline')."""


class Publisher:
    """Owns the paho client and the pump thread that moves outbox rows to the broker."""

    def __init__(self, config: AgentConfig, outbox: Outbox, metrics: AgentMetrics, status: StatusSource,
                 on_message: Callable[[Kind, bytes], None] | None = None) -> None:
        self.config = config
        self.outbox = outbox
        self.metrics = metrics
        self.status = status
        self.on_message = on_message
        self.connected = threading.Event()
        self._stopping = threading.Event()
        # paho calls on_publish while holding its own message lock, so PUBACKs travel to the pump thread
        # through a queue; only the pump touches the in-flight map (no lock order to get wrong).
        self._events: queue.SimpleQueue[tuple[int, Any] | None] = queue.SimpleQueue()
        self._inflight: dict[int, Entry] = {}  # paho mid → outbox entry
        self._retry_after: dict[int, float] = {}  # outbox id → monotonic time (refused by the broker)
        outbox.on_insert = self._wake
        self._pump_thread: threading.Thread | None = None
        self._session_ms = 0  # set when each connection opens (`_on_pre_connect`)
        self._connect_failures = 0
        self.client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        m = self.config.mqtt
        gw = self.config.gateway_id
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=gw, protocol=mqtt.MQTTv5)
        client.username_pw_set(m.username or gw, self.config.mqtt_password())
        if m.tls is not None:
            client.tls_set(ca_certs=m.tls.ca, certfile=m.tls.cert, keyfile=m.tls.key,
                           tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.on_pre_connect = self._on_pre_connect  # composes the will for each connection
        client.max_inflight_messages_set(m.max_inflight)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(min_delay=max(1, round(m.reconnect_min_s)), max_delay=round(m.reconnect_max_s))
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background (retrying forever) and start draining the outbox."""
        m = self.config.mqtt
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = m.session_expiry_s
        self.client.connect_async(m.host, m.port, keepalive=m.keepalive_s, clean_start=False, properties=props)
        self.client.loop_start()
        self._pump_thread = threading.Thread(target=self._pump, name="publisher", daemon=True)
        self._pump_thread.start()

    def drain(self, timeout_s: float) -> bool:
        """Wait until the outbox is empty (everything PUBACKed) or the timeout passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.outbox.depth() == 0:
                return True
            time.sleep(0.05)
        return self.outbox.depth() == 0

    def stop(self) -> None:
        """Say goodbye (retained offline status: a clean DISCONNECT does not fire the will) and disconnect."""
        self._stopping.set()
        self._wake()
        if self._pump_thread is not None:
            self._pump_thread.join(timeout=2)
        if self.connected.is_set():
            info = self.client.publish(topic(self.config.gateway_id, "status"), encode(self._status("offline")),
                                       qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()

    def publish_status(self) -> None:
        """Refresh the retained `online` status (health figures); skipped while disconnected."""
        if self.connected.is_set():
            self.client.publish(topic(self.config.gateway_id, "status"), encode(self._status("online")), qos=1,
                                retain=True)

    def publish_reported(self, reported: Reported) -> None:
        """Retained `reported`: paho queues it if the connection is down right now."""
        self.client.publish(topic(self.config.gateway_id, "reported"), encode(reported), qos=1, retain=True)

    def _status(self, state: str) -> Status:
        return msgspec.structs.replace(self.status(state), session=self._session_ms or None)

    # --- paho callbacks (paho's network thread) --------------------------------------------------
    def _on_pre_connect(self, client: mqtt.Client, _userdata: Any) -> None:
        """A new session id (strictly increasing even if the clock steps back) and the will that ends it."""
        self._session_ms = max(int(time.time() * 1000), self._session_ms + 1)
        client.will_set(topic(self.config.gateway_id, "status"), encode(self._status("offline")), qos=1, retain=True)

    def _on_connect(self, client: mqtt.Client, _userdata: Any, flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error("event=mqtt_connect_refused gateway=%s reason=%s", self.config.gateway_id, reason)
            return
        self.connected.set()
        self.metrics.connected.set(1)
        log.info("event=mqtt_connected gateway=%s broker=%s:%d session_present=%s", self.config.gateway_id,
                 self.config.mqtt.host, self.config.mqtt.port, flags.session_present)
        gw = self.config.gateway_id
        client.publish(topic(gw, "status"), encode(self._status("online")), qos=1, retain=True)
        client.subscribe([(topic(gw, "desired"), 1), (topic(gw, "replay"), 1)])
        self._wake()

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        """A connection attempt failed before MQTT (name lookup, TCP, TLS): say where to and why, every attempt (the
        reconnect backoff, up to `mqtt.reconnect_max_s`, bounds how often)."""
        self.metrics.connect_failures.inc()
        self._connect_failures += 1
        exc = sys.exc_info()[1]  # paho calls this from inside its `except OSError`
        reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else "unknown"
        log.warning("event=mqtt_connect_failed gateway=%s broker=%s:%d reason=%s error=%s attempt=%d "
                    "retry_max_s=%g", self.config.gateway_id, self.config.mqtt.host, self.config.mqtt.port,
                    reason, type(exc).__name__ if exc else "-", self._connect_failures,
                    self.config.mqtt.reconnect_max_s)

    def _on_disconnect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self.connected.clear()
        self.metrics.connected.set(0)
        if not self._stopping.is_set():
            m = self.config.mqtt
            jittered = m.reconnect_min_s * (1 + random.random())  # herds of gateways must not reconnect in step
            client.reconnect_delay_set(min_delay=max(1, round(jittered)), max_delay=round(m.reconnect_max_s))
            log.warning("event=mqtt_disconnected gateway=%s reason=%s", self.config.gateway_id, reason)

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int, reason: Any, _props: Any) -> None:
        self._events.put((mid, reason))

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self.on_message is None:
            return
        for kind in ("desired", "replay"):
            if message.topic == topic(self.config.gateway_id, kind):
                self.on_message(kind, bytes(message.payload))

    # --- the pump (its own thread: the only reader and writer of the in-flight map) ---------------
    def _wake(self) -> None:
        self._events.put(None)

    def _pump(self) -> None:
        window = self.config.mqtt.max_inflight
        while not self._stopping.is_set():
            try:
                event = self._events.get(timeout=0.5)
            except queue.Empty:
                event = None
            while event is not None or not self._events.empty():
                if event is not None:
                    self._settle(*event)
                event = self._events.get_nowait() if not self._events.empty() else None
            if not self.connected.is_set() or self._stopping.is_set():
                continue
            now = time.monotonic()
            self._retry_after = {i: t for i, t in self._retry_after.items() if t > now}
            busy = {e.id for e in self._inflight.values()}
            room = window - len(busy)
            if room > 0:
                for entry in self.outbox.pending(room, exclude=busy | set(self._retry_after)):
                    info = self.client.publish(topic(self.config.gateway_id, _kind(entry)), entry.payload, qos=1)
                    self._inflight[info.mid] = entry

    def _settle(self, mid: int, reason: Any) -> None:
        """A PUBACK arrived: ack the row, or keep it for a later retry if the broker refused it."""
        entry = self._inflight.pop(mid, None)
        if entry is None:
            return  # a status message, not an outbox row
        if reason.is_failure:
            self.metrics.publish_failed.labels(reason=str(reason)).inc()
            log.error("event=publish_refused gateway=%s kind=%s seq=%d reason=%s retry_in_s=5",
                      self.config.gateway_id, entry.kind, entry.seq, reason)
            self._retry_after[entry.id] = time.monotonic() + 5.0
        else:
            self.outbox.ack(entry.id)
            self.metrics.published.labels(kind=entry.kind).inc()


def _kind(entry: Entry) -> Kind:
    return "alerts" if entry.kind == "alerts" else "telemetry"
