"""The MQTT side of desired state: one persistent paho client with the cloud's service account, publishing
retained QoS 1 messages on `cw/v1/{gateway}/desired` and waiting for each PUBACK."""

from __future__ import annotations

import logging
import threading
import time
from typing import Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from cloud.config import Settings, desired_signing_pem
from protocol.topics import topic

log = logging.getLogger(__name__)
PUBLISH_TIMEOUT_S: Final = 10.0


class PublishError(RuntimeError):
    """The broker did not acknowledge a desired-state message."""


class MqttDesiredPublisher:
    """`DesiredPublisher` over MQTT; thread-safe (the controller thread and request threads share it). Holds the fleet
    key desired documents are signed with (COLDWATCH_DESIRED_SIGNING_KEY), read once here."""

    def __init__(self, settings: Settings, client_id: str = "coldwatch-desired") -> None:
        self.signing_key = desired_signing_pem(settings)
        if self.signing_key is None:
            log.warning("desired documents are published unsigned: COLDWATCH_DESIRED_SIGNING_KEY is not set; gateways "
                        "with updater.public_keys refuse them (development and upgrades only, docs/deploy.md)")
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                   protocol=MQTTProtocolVersion.MQTTv5)
        self._client.username_pw_set(settings.mqtt_username, settings.require_mqtt_password())
        self._client.reconnect_delay_set(1, 10)
        self._lock = threading.Lock()
        self._host, self._port = settings.mqtt_host, settings.mqtt_port
        self._started = False

    def start(self) -> MqttDesiredPublisher:
        """Connect in the background (reconnects on its own)."""
        self._client.connect_async(self._host, self._port)
        self._client.loop_start()
        self._started = True
        return self

    def publish(self, gateway_id: str, payload: bytes) -> None:
        """Publish retained with QoS 1; PublishError unless the broker acknowledged it in time."""
        with self._lock:
            if not self._client.is_connected():
                raise PublishError(f"not connected to the broker {self._host}:{self._port}")
            info = self._client.publish(topic(gateway_id, "desired"), payload, qos=1, retain=True)
        try:
            info.wait_for_publish(PUBLISH_TIMEOUT_S)
        except (RuntimeError, ValueError) as exc:
            raise PublishError(f"desired for {gateway_id} not published: {exc}") from exc
        if not info.is_published():
            raise PublishError(f"desired for {gateway_id} not acknowledged within {PUBLISH_TIMEOUT_S:g} s")

    def wait_connected(self, timeout_s: float) -> bool:
        """Whether the client connected within `timeout_s` (for start-up checks and tests)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._client.is_connected():
                return True
            time.sleep(0.05)
        return self._client.is_connected()

    def close(self) -> None:
        """Disconnect."""
        if self._started:
            self._client.disconnect()
            self._client.loop_stop()
