"""The ingest worker's MQTT session (cloud/ingest/mqtt_link.py) against a real mosquitto: one `pump` reads a whole
burst of messages after a single wait for the socket (and no more than the worker has room for), and a batch's
PUBACKs, sent as one write, settle every message (the broker re-sends none of them to the same session after a
reconnect)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import MQTTErrorCode

from cloud.config import Settings
from cloud.ingest.mqtt_link import MqttLink, ack_all
from tests.conftest import INGEST_USER, Broker
from tests.integration.test_ingest import Gateway

pytestmark = pytest.mark.integration


def link_to(broker: Broker, received: list[mqtt.MQTTMessage]) -> MqttLink:
    settings = Settings(mqtt_host=broker.host, mqtt_port=broker.port, mqtt_username=INGEST_USER,
                        mqtt_password=broker.password(INGEST_USER), ingest_worker_id="link-test")
    link = MqttLink(settings, broker.password(INGEST_USER), receive_maximum=1000, clock=time.monotonic,
                    on_message=lambda client, userdata, message: received.append(message), on_down=lambda why: None)
    return link


def pump_until(link: MqttLink, condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        if link.client.socket() is None:
            link.try_connect()
        assert link.pump(0.05) in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN)


def test_one_pump_reads_a_burst_and_acks_settle_it(mosquitto_factory: Callable[..., Broker],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    broker = mosquitto_factory()
    received: list[mqtt.MQTTMessage] = []
    link = link_to(broker, received)
    subscribed = []
    on_subscribe: Any = link.client.on_subscribe
    link.client.on_subscribe = lambda *args: (subscribed.append(1), on_subscribe(*args))
    pump_until(link, lambda: bool(subscribed))
    gateway = Gateway(broker, "gw1")
    try:
        for i in range(200):
            gateway.publish(b'{"not": "decoded here"}' + str(i).encode())
    finally:
        gateway.close()
    time.sleep(0.5)  # the broker has sent them all: they wait in the socket
    waits = []
    real_select = __import__("select").select
    monkeypatch.setattr("cloud.ingest.mqtt_link.select.select",
                        lambda *args: (waits.append(1), real_select(*args))[1])
    for _ in range(50):  # the worker's batch is full at 50: it reads no further, however much is waiting
        link.pump(1.0, more=lambda: len(received) < 50)
        if len(received) >= 50:
            break
    assert len(received) == 50
    for _ in range(50):
        link.pump(1.0)
        if len(received) == 200:
            break
    assert len(received) == 200 and len(waits) < 20  # paho's loop() waits on select once a packet: 200 times
    monkeypatch.undo()
    ack_all(link.client, [(m.mid, m.qos) for m in received])
    end = time.monotonic() + 1
    while time.monotonic() < end:  # the broker reads them before the session closes
        link.pump(0.1)
    link.client.disconnect()
    link.pump(0.1)
    again: list[mqtt.MQTTMessage] = []
    link = link_to(broker, again)  # the same client id and session: unacknowledged messages would come back
    pump_until(link, lambda: link.connected and link.client.socket() is not None)
    end = time.monotonic() + 2
    while time.monotonic() < end:
        link.pump(0.1)
    assert again == []
