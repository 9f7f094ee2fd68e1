"""A small real model for integration tests: trained on the simulator, int8-exported and signed in the run
(shared by the edge model tests and the cloud rollout tests)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from pathlib import Path

from protocol.messages import Desired, DesiredModel
from tests.integration.edge_harness import T0_MS


class SignedModel:
    """chilled_ae-1: trained on the simulator's normal data, exported int8, signed with a fresh key."""

    def __init__(self, directory: Path) -> None:
        from models.runtime.manifest import Manifest, generate_keypair, sha256_file, write_signed
        from models.training.export import convert_int8
        from models.training.train import MODEL_BUDGET_SHARE, TrainConfig, train_profile

        trained = train_profile(TrainConfig(profile="chilled", sensors=4, days=1.0, validation_sensors=2,
                                            validation_days=0.5, epochs=2))
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        model = directory / "chilled_ae-1.tflite"
        convert_int8(trained, model)  # a 4-sensor model: the pipeline's episode check is tested elsewhere
        self.private_pem, public_raw = generate_keypair()
        self.public_key = directory.parent / "fleet.pub"
        self.public_key.write_bytes(public_raw)
        self.manifest = Manifest(name="chilled_ae", version="1", profile="chilled",
                                 feature_spec=trained.spec.to_dict(), threshold=trained.threshold,
                                 training_range=trained.training_range,
                                 metrics={"model_budget_per_sensor_day": trained.alert_budget * MODEL_BUDGET_SHARE},
                                 sha256=sha256_file(model),
                                 created_at=dt.datetime.now(dt.UTC).isoformat())
        self.files = write_signed(self.manifest, directory, self.private_pem)

    def variant(self, version: str, threshold: float, private_pem: bytes | None = None) -> Path:
        """The same network signed again as another version, with its own decision threshold (and optionally
        another signing key); returns the .tflite path."""
        from models.runtime.manifest import write_signed

        model = self.directory / f"chilled_ae-{version}.tflite"
        shutil.copy(self.files.model, model)
        write_signed(dataclasses.replace(self.manifest, version=version, threshold=threshold), self.directory,
                     private_pem or self.private_pem)
        return model

    def desired(self, version: int, base_url: str, stem: str = "chilled_ae-1", gateway: str = "gw1",
                sign: bool = True, **mode: object) -> Desired:
        """A desired document for `gateway` naming model `stem`, signed with the fleet key as the cloud signs it
        (unless `sign` is false); `mode`: the model's other fields (mode, probation_s, rollback...)."""
        from models.runtime.manifest import sign_desired
        from protocol.codec import decode, encode

        name, model_version = stem.split("-")
        signature = (self.directory / f"{stem}.sig")
        sig = signature.read_text().strip() if signature.exists() else self.files.signature.read_text().strip()
        desired = decode(encode(Desired(version=version, issued_at=T0_MS, gateway=gateway, model=DesiredModel(
            name=name, version=model_version, profile="chilled", url=f"{base_url}/{stem}.tflite",
            sha256=self.manifest.sha256, signature=sig, **mode))), Desired)  # type: ignore[arg-type]
        return sign_desired(desired, self.private_pem) if sign else desired
