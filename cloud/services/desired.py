"""Desired state per gateway: build the message (naming its gateway, signed with the fleet key when the publisher
holds one), publish it retained (through a `DesiredPublisher`), and remember what was sent so versions only grow and
the gateway's fleet config is kept."""

from __future__ import annotations

import json
import logging
from typing import Final, Protocol

import msgspec
from sqlmodel import Session

from cloud.db.fleet import Gateway
from cloud.db.registry import ModelArtifact
from cloud.db.rollouts import GatewayDesired
from cloud.services.clock import now_ms
from models.runtime.manifest import sign_desired
from protocol.codec import ProtocolError, decode, encode
from protocol.messages import Desired, DesiredModel

log = logging.getLogger(__name__)
MAX_VERSION_LEAD: Final = 100_000  # how far a gateway's reported desired version may run ahead of ours


class DesiredPublisher(Protocol):
    """Where desired state goes: retained, QoS 1, on `cw/v1/{gateway}/desired` (cloud/mqtt_desired.py), and the
    fleet key (PEM) it is signed with: None publishes the unsigned form older agents know (development, upgrades;
    agents with trusted keys refuse it)."""

    signing_key: bytes | None

    def publish(self, gateway_id: str, payload: bytes) -> None:
        """Publish and wait for the broker's acknowledgement; raise on failure (the caller rolls back)."""


def artifact_url(base_url: str, stem: str) -> str:
    """The URL gateways download `<stem>.tflite` from; the manifest is beside it (`.manifest.json`)."""
    return f"{base_url.rstrip('/')}/api/v1/artifacts/{stem}.tflite"


def desired_model(model: ModelArtifact, *, base_url: str, mode: str, probation_s: float,
                  max_alert_ratio: float, rollback: bool = False) -> DesiredModel:
    """The `model` part of a desired message for a registered artifact; `rollback`: ops's deliberate return to an
    older model, which the gateway's anti-rollback otherwise refuses."""
    return DesiredModel(name=model.name, version=model.version, profile=model.profile,
                        url=artifact_url(base_url, model.stem), sha256=model.sha256, signature=model.signature,
                        mode=mode, probation_s=probation_s, max_alert_ratio=max_alert_ratio,  # type: ignore[arg-type]
                        rollback=rollback)


def current(session: Session, gateway_id: str) -> GatewayDesired | None:
    """The desired state last published to a gateway."""
    return session.get(GatewayDesired, gateway_id)


def publish_model(session: Session, *, publisher: DesiredPublisher, gateway_id: str, model: ModelArtifact,
                  base_url: str, mode: str = "active", probation_s: float = 3600.0,
                  max_alert_ratio: float = 3.0, rollback: bool = False) -> int:
    """Publish a desired state naming `model` to one gateway; returns its version (added to the session).
    `rollback` lets the gateway go below the highest version it has run for the profile (rollouts.py decides)."""
    return _publish(session, publisher=publisher, gateway_id=gateway_id,
                    model=desired_model(model, base_url=base_url, mode=mode, probation_s=probation_s,
                                        max_alert_ratio=max_alert_ratio, rollback=rollback), stem=model.stem, mode=mode)


def publish_withdrawal(session: Session, *, publisher: DesiredPublisher, gateway_id: str) -> int:
    """Publish a desired state naming no model: the gateway ends any candidate's shadow and keeps its active models
    (a halted canary that had no model to return to). Returns its version."""
    return _publish(session, publisher=publisher, gateway_id=gateway_id, model=None, stem=None, mode=None)


def _publish(session: Session, *, publisher: DesiredPublisher, gateway_id: str, model: DesiredModel | None,
             stem: str | None, mode: str | None) -> int:
    row = session.get(GatewayDesired, gateway_id)
    gateway = session.get(Gateway, gateway_id)
    published = row.version if row else 0
    reported = gateway.reported_desired_version or 0 if gateway is not None else 0
    if reported > published + MAX_VERSION_LEAD:
        # a gateway reports versions far beyond anything published here: a forged document it refused (reported
        # under the version it claimed) must not push this gateway's versions out of range; a database restored
        # from an old backup lags by far less
        log.warning("desired version reported by gateway=%s ignored: %d is more than %d above the last published %d",
                    gateway_id, reported, MAX_VERSION_LEAD, published)
        reported = 0
    version = max(published + 1, reported + 1)
    config = None
    if row is not None:
        try:
            config = decode(json.dumps(row.payload).encode(), Desired).config  # the fleet config stays
        except ProtocolError:
            config = None
    if publisher.signing_key is None:
        # Unsigned: the document as before signing existed (no `gateway`, no `rollback`), which agents from before
        # it still decode (they refuse unknown fields); agents with trusted keys refuse it (docs/deploy.md, Upgrades).
        model = msgspec.structs.replace(model, rollback=False) if model is not None else None
        message = Desired(version=version, issued_at=now_ms(), config=config, model=model)
    else:
        message = Desired(version=version, issued_at=now_ms(), config=config, model=model, gateway=gateway_id)
        # Normalised as the gateway decodes it (floats, defaults): the signature covers the bytes it re-encodes.
        message = sign_desired(decode(encode(message), Desired), publisher.signing_key)
    payload = encode(message)
    publisher.publish(gateway_id, payload)
    if row is None:
        row = GatewayDesired(gateway_id=gateway_id, version=version, payload={}, published_at=0)
    row.version, row.model_stem, row.mode = version, stem, mode
    row.payload, row.published_at = json.loads(payload), now_ms()
    session.add(row)
    log.info("desired published gateway=%s version=%d model=%s mode=%s rollback=%s signed=%s", gateway_id, version,
             stem or "-", mode or "-", bool(model and model.rollback), message.signature is not None)
    return version
