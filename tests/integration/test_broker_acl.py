"""The broker's ACL, on a real mosquitto with the generated config: a gateway's credentials reach only its own
subtree (cw/v1/<gateway>/…), may not write its own desired state or replay requests, and cannot read another's."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from tests.conftest import API_USER, INGEST_USER, Broker

pytestmark = pytest.mark.integration
NOT_AUTHORIZED = 135
ACCEPTED = (0, 16)  # success, and "no matching subscribers" (a success too)


class Client:
    """A connected MQTT 5 client that records PUBACK/SUBACK reason codes and messages."""

    def __init__(self, broker: Broker, user: str, client_id: str) -> None:
        self.acks: dict[int, int] = {}
        self.messages: list[tuple[str, bytes]] = []
        self.changed = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.username_pw_set(user, broker.password(user))
        self.client.on_publish = lambda _c, _u, mid, reason, _p: self._ack(mid, reason.value)
        self.client.on_subscribe = lambda _c, _u, mid, reasons, _p: self._ack(mid, reasons[0].value)
        self.client.on_message = self._message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _ack(self, mid: int, code: int) -> None:
        with self.changed:
            self.acks[mid] = code
            self.changed.notify_all()

    def _message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        with self.changed:
            self.messages.append((message.topic, bytes(message.payload)))
            self.changed.notify_all()

    def wait_ack(self, mid: int) -> int:
        with self.changed:
            assert self.changed.wait_for(lambda: mid in self.acks, timeout=15), f"no ack for mid {mid}"
            return self.acks[mid]

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> int:
        return self.wait_ack(self.client.publish(topic, payload, qos=1, retain=retain).mid)

    def subscribe(self, topic: str) -> int:
        return self.wait_ack(self.client.subscribe(topic, qos=1)[1])

    def wait_message(self, payload: bytes) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: any(p == payload for _t, p in self.messages), timeout=15), payload

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients(mosquitto: Broker) -> Iterator[dict[str, Client]]:
    made = {"gw1": Client(mosquitto, "gw1", "acl-gw1"), "gw2": Client(mosquitto, "gw2", "acl-gw2"),
            "cloud": Client(mosquitto, INGEST_USER, "acl-cloud"), "api": Client(mosquitto, API_USER, "acl-api")}
    yield made
    for client in made.values():
        client.close()


def test_a_gateway_publishes_only_into_its_own_subtree(clients: dict[str, Client]) -> None:
    gw1, cloud = clients["gw1"], clients["cloud"]
    assert cloud.subscribe("cw/v1/+/telemetry") == 1  # granted QoS 1
    assert gw1.publish("cw/v1/gw2/telemetry", b"forged") == NOT_AUTHORIZED
    assert gw1.publish("cw/v1/gw2/alerts", b"forged") == NOT_AUTHORIZED
    assert gw1.publish("cw/v1/gw1/desired", b"self-service") == NOT_AUTHORIZED  # only the cloud writes desired
    assert gw1.publish("cw/v1/gw1/replay", b"self-service") == NOT_AUTHORIZED
    assert gw1.publish("cw/v1/gw1/telemetry", b"genuine") == 0
    cloud.wait_message(b"genuine")
    time.sleep(0.5)  # anything forged would have arrived with or before the genuine message
    assert [p for _t, p in cloud.messages] == [b"genuine"]


def test_a_gateway_cannot_read_another_gateways_desired_state(clients: dict[str, Client]) -> None:
    gw1, gw2, cloud = clients["gw1"], clients["gw2"], clients["api"]
    assert cloud.publish("cw/v1/gw2/desired", b"gw2-desired", retain=True) in ACCEPTED
    assert cloud.publish("cw/v1/gw1/desired", b"gw1-desired", retain=True) in ACCEPTED
    # mosquitto grants the SUBSCRIBE and applies the ACL to every message it would deliver: what counts is
    # that nothing of gw2's arrives, asked for by name or by wildcard.
    assert gw1.subscribe("cw/v1/gw2/desired") in (0, 1, NOT_AUTHORIZED)
    assert gw1.subscribe("cw/v1/+/desired") in (0, 1, NOT_AUTHORIZED)
    assert gw1.subscribe("cw/v1/gw1/replay") == 1
    gw1.wait_message(b"gw1-desired")
    assert gw2.subscribe("cw/v1/gw2/desired") == 1
    gw2.wait_message(b"gw2-desired")
    time.sleep(0.5)
    assert b"gw2-desired" not in [p for _t, p in gw1.messages]
    cloud.publish("cw/v1/gw1/desired", b"", retain=True)  # clear the retained messages for other tests
    cloud.publish("cw/v1/gw2/desired", b"", retain=True)


def test_the_ingest_account_cannot_change_what_a_gateway_runs_and_the_api_cannot_read_the_uplink(
        clients: dict[str, Client]) -> None:
    """A compromised ingest worker must not push a desired state; the API's account only writes desired."""
    ingest, api, gw1 = clients["cloud"], clients["api"], clients["gw1"]
    assert gw1.subscribe("cw/v1/gw1/desired") == 1
    assert ingest.publish("cw/v1/gw1/desired", b"from-ingest", retain=True) == NOT_AUTHORIZED
    assert ingest.publish("cw/v1/gw1/replay", b"replay-request") in ACCEPTED  # ingest asks for replays
    assert api.subscribe("cw/v1/+/telemetry") in (0, 1, NOT_AUTHORIZED)
    assert api.publish("cw/v1/gw1/telemetry", b"forged-by-api") == NOT_AUTHORIZED
    assert gw1.publish("cw/v1/gw1/telemetry", b"genuine-for-api") == 0
    time.sleep(0.5)
    assert b"from-ingest" not in [p for _t, p in gw1.messages]
    assert b"genuine-for-api" not in [p for _t, p in api.messages]  # the API reads no gateway's data
