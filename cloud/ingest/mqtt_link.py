"""The ingest worker's MQTT v5 session: a persistent session on a shared subscription, manual acknowledgement,
a receive window as large as a batch, reconnects with backoff."""

from __future__ import annotations

import logging
import select
import struct
from collections.abc import Callable
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.client import PUBACK
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from cloud.config import Settings
from cloud.ingest.decode import INGEST_KINDS
from cloud.ingest.failures import Backoff
from protocol.topics import subscription

log = logging.getLogger(__name__)

SESSION_EXPIRY_S: Final = 24 * 3600
MAX_RECEIVE_MAXIMUM: Final = 65535
KEEPALIVE_S: Final = 30
MAX_PACKETS_PER_PUMP: Final = 512  # packets read after one select (then acks, keepalive and the batch get a turn)

OnMessage = Callable[[mqtt.Client, Any, mqtt.MQTTMessage], None]
_PUBACK: Final = struct.Struct("!BBH")  # fixed header (PUBACK, remaining length 2), packet id: reason 0, success


def ack_all(client: mqtt.Client, acks: list[tuple[int, int]]) -> None:
    """Acknowledge messages `(mid, qos)` at once: their PUBACKs queued as one write. paho's `ack` costs two system
    calls a message (a wake-up byte to its socket pair, then a send of 4 bytes): at fleet shape, where a message
    holds a reading or two, that was a tenth of a worker. This goes through paho's own output queue (`_packet_queue`,
    the one its `ack` uses, so the bytes never interleave with a packet paho is writing); a client without it (a
    test's stand-in, another paho) is acknowledged message by message. QoS 2 is never subscribed to."""
    queue = getattr(client, "_packet_queue", None)
    if queue is None:
        for mid, qos in acks:
            client.ack(mid, qos)
        return
    mids = [mid for mid, qos in acks if qos == 1]  # QoS 0 needs none
    if mids:
        queue(PUBACK, b"".join([_PUBACK.pack(PUBACK, 2, mid) for mid in mids]), 0, 0)


class MqttLink:
    """The paho client and whether its link is up; `on_down(why)` runs once each time an up link goes down."""

    def __init__(self, settings: Settings, password: str, *, receive_maximum: int, clock: Callable[[], float],
                 on_message: OnMessage, on_down: Callable[[str], None]) -> None:
        self.settings = settings
        self._password = password
        self.receive_maximum = receive_maximum
        self._on_down = on_down
        self._backoff = Backoff(clock)
        self.connected = False
        self._ever_connected = False
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=settings.ingest_worker_id,
                                  protocol=MQTTProtocolVersion.MQTTv5)
        self.client.username_pw_set(settings.mqtt_username, password)
        self.client.manual_ack_set(True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._counted(on_message)
        self.client.on_subscribe = self._on_subscribe
        self.messages_in = 0  # PUBLISH packets handed to on_message (pump reads while they keep coming)
        self._clock = clock
        self.last_message_at = clock()  # when the last PUBLISH was handed to on_message (the worker's group commit)

    def _counted(self, on_message: OnMessage) -> OnMessage:
        def counted(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
            self.messages_in += 1
            self.last_message_at = self._clock()
            on_message(client, userdata, message)
        return counted

    def pump(self, timeout: float, *, more: Callable[[], bool] = lambda: True) -> MQTTErrorCode:
        """One turn of the session through paho's API for an external loop (`socket`, `loop_read`, `loop_write`,
        `loop_misc`: what its `loop()` does): wait up to `timeout` for the socket, then read packets while messages
        keep coming and `more()` says so (at most MAX_PACKETS_PER_PUMP; the worker stops at a full batch, so what it
        holds stays bounded), write what is queued and keep the session alive. paho's `loop()`
        reads one packet a call, each after a `select`: at fleet shape, a message of a reading or two, that was
        a tenth of a worker. Not calling `loop()` also spares paho's wake-up socket pair a write per PUBACK."""
        client = self.client
        sock = client.socket()
        if sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        try:
            readable, _, _ = select.select([sock], [sock] if client.want_write() else [], [], timeout)
        except (OSError, ValueError, TypeError):  # the socket closed under us
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        if readable:
            for _ in range(MAX_PACKETS_PER_PUMP):
                before = self.messages_in
                rc = client.loop_read()
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    return rc
                if self.messages_in == before or client.socket() is None or not more():
                    break  # no more data (or a packet that is not a message: the next select sees what follows)
        if client.want_write():
            rc = client.loop_write()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return rc
        return client.loop_misc()

    def connect_properties(self) -> Properties:
        """CONNECT properties: the session outlives a restart, and the broker may send a whole batch unacked."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        # Without this the broker sends at most 20 unacknowledged messages, which would cap the batch.
        props.ReceiveMaximum = self.receive_maximum
        return props

    def try_connect(self) -> None:
        """Open the socket when the backoff allows (CONNACK arrives through the client's loop)."""
        if not self._backoff.ready():
            return
        delay = self._backoff.failed()  # reset on CONNACK success
        try:
            if self._ever_connected:
                self.client.reconnect()
            else:
                self.client.connect(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=KEEPALIVE_S,
                                    clean_start=False, properties=self.connect_properties())
            self._ever_connected = True
            self.connected = True
        except (OSError, ValueError) as exc:
            log.warning("mqtt connect failed broker=%s:%d error=%s retry_in_s=%.1f", self.settings.mqtt_host,
                        self.settings.mqtt_port, exc, delay)

    def down(self, why: str) -> None:
        """The link is gone (disconnect, a failed loop): note it once and tell the worker."""
        if not self.connected:
            return
        self.connected = False
        self._on_down(why)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
                    reason_code: Any, properties: Properties | None) -> None:
        if reason_code.is_failure:
            log.error("mqtt connection refused reason=%s user=%s", reason_code, self.settings.mqtt_username)
            return
        self._backoff.reset()
        log.info("mqtt connected worker=%s session_present=%s receive_maximum=%d",
                 self.settings.ingest_worker_id, flags.session_present, self.receive_maximum)
        # Subscribe on every connect: a broker that lost the session must still deliver to us.
        client.subscribe([(subscription(kind), SubscribeOptions(qos=1)) for kind in INGEST_KINDS])

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: list[Any],
                      properties: Properties | None) -> None:
        granted = []
        for kind, rc in zip(INGEST_KINDS, reason_codes, strict=False):
            if rc.is_failure:
                log.error("mqtt subscribe refused topic=%s reason=%s", subscription(kind), rc)  # type: ignore[arg-type]
            else:
                granted.append(subscription(kind))  # type: ignore[arg-type]
        if granted:
            log.info("mqtt subscribed topics=%s qos=1", ",".join(granted))

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Properties | None) -> None:
        self.down(f"reason={reason_code}")
