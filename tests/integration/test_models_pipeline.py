"""The model pipeline end to end on a tiny model: train → int8 .tflite → signed manifest → verify → evaluate;
the .tflite runs in the gateway's tflite_runtime; CSV train / score round trip on a simulator export."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from models.runtime.manifest import ModelFiles, ModelRejected, load_verified
from models.training.cli import add_subparsers, dispatch

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--sensors", "3", "--days", "1", "--epochs", "2"]


def coldwatch(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="coldwatch")
    add_subparsers(parser.add_subparsers(dest="command", required=True))
    return dispatch(parser.parse_args(["models", *argv]))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    assert coldwatch("keygen", "--out", str(root / "keys")) == 0
    assert coldwatch("train", "--profile", "chilled", *TINY, "--out", str(root / "models"), "--version", "1",
                     "--key", str(root / "keys" / "fleet.key")) == 0
    return root


def model_dir(workdir: Path) -> Path:
    return workdir / "models" / "cw_chilled-1"


def test_trained_model_is_signed_small_and_verifies(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = ModelFiles.locate(model_dir(workdir))
    assert files.model.stat().st_size <= 64 * 1024
    assert coldwatch("verify", str(model_dir(workdir)), "--public-key", str(workdir / "keys" / "fleet.pub")) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["ok"] is True
    manifest = json.loads(files.manifest.read_text())
    assert manifest["profile"] == "chilled" and manifest["threshold"] > 0
    assert manifest["metrics"]["int8_check"]["decision_agreement"] >= 0.99
    assert manifest["training_range"]["train_seeds"] == [0, 0]


def test_other_key_is_rejected_and_resigning_works(workdir: Path, tmp_path: Path) -> None:
    assert coldwatch("keygen", "--out", str(tmp_path), "--name", "other") == 0
    assert coldwatch("verify", str(model_dir(workdir)), "--public-key", str(tmp_path / "other.pub")) == 1
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in model_dir(workdir).iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    assert coldwatch("sign", str(copy), "--key", str(tmp_path / "other.key")) == 0
    assert coldwatch("verify", str(copy), "--public-key", str(tmp_path / "other.pub")) == 0
    (copy / "cw_chilled-1.tflite").write_bytes(b"tampered")
    with pytest.raises(ModelRejected, match="hash_mismatch"):
        load_verified(copy, [(tmp_path / "other.pub").read_bytes()])


def test_tflite_runs_batched_in_the_gateway_runtime(workdir: Path, edge_python: Path) -> None:
    from models.runtime.features import score
    from models.runtime.tflite import TfliteModel

    files = ModelFiles.locate(model_dir(workdir))
    spec_n = TfliteModel(files.model).features
    x = np.random.default_rng(0).normal(size=(7, spec_n)).astype(np.float32)
    np.save(workdir / "x.npy", x)
    code = ("import sys, numpy as np; from models.runtime.tflite import TfliteModel, interpreter_class; "
            "assert interpreter_class().__module__.startswith('tflite_runtime'); "
            "m = TfliteModel(sys.argv[1]); x = np.load(sys.argv[2]); "
            "np.save(sys.argv[3], np.concatenate([m.outputs(x), m.outputs(x[:1])]))")
    out = subprocess.run([str(edge_python), "-c", code, str(files.model), str(workdir / "x.npy"),
                          str(workdir / "y.npy")], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    edge = np.load(workdir / "y.npy")
    litert = TfliteModel(files.model).outputs(x)  # ai_edge_litert in the cloud venv
    np.testing.assert_allclose(edge[7], edge[0], atol=1e-6)  # a single window = its row in a batch
    # the two runtimes' int8 kernels may round an output one quantisation step apart, never more
    step = float(np.min(np.diff(np.unique(litert))))
    np.testing.assert_allclose(edge[:7], litert, atol=1.01 * step + 1e-6)
    np.testing.assert_allclose(score(x, edge[:7]), score(x, litert), rtol=0.02, atol=1.01 * step + 1e-6)


def test_more_rows_than_one_invoke_takes_give_each_rows_own_output(workdir: Path) -> None:
    """A gateway's tick of thousands of windows goes through in invokes of `MAX_BATCH` rows (the last padded): every
    row's output is the one it gets alone, and the interpreter keeps its one size."""
    from models.runtime.tflite import MAX_BATCH, TfliteModel

    files = ModelFiles.locate(model_dir(workdir))
    model = TfliteModel(files.model)
    x = np.random.default_rng(1).normal(size=(2 * MAX_BATCH + 37, model.features)).astype(np.float32)
    together = model.outputs(x)
    assert together.shape[0] == len(x) and model._batch == MAX_BATCH
    alone = TfliteModel(files.model)
    for i in (0, MAX_BATCH - 1, MAX_BATCH, len(x) - 1):
        np.testing.assert_array_equal(together[i], alone.outputs(x[i:i + 1])[0])


def test_export_refuses_an_int8_model_that_misses_the_faults_fp32_alerts_on(
        workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from models.training import pipeline
    from models.training.artifacts import export_model, load_checkpoint
    from models.training.export import ExportRejected

    class Flat:  # an int8 model gone wrong: the same output for every window
        def __init__(self, path: Path) -> None:
            pass

        def outputs(self, x: np.ndarray) -> np.ndarray:
            return np.zeros((len(x), 1), dtype=np.float32)

    trained = load_checkpoint(model_dir(workdir) / "cw_chilled-1.pt")
    assert trained.validation_series, "the checkpoint carries the series the threshold is calibrated on"
    monkeypatch.setattr(pipeline, "TfliteModel", Flat)
    with pytest.raises(ExportRejected, match=r"int8 misses \d+ of the \d+ faults.*What to do"):
        export_model(trained, tmp_path / "flat", name="cw_chilled", version="9", private_key_pem=None)
    assert not (tmp_path / "flat" / "cw_chilled-9.tflite").exists()


def test_a_checkpoint_from_before_the_models_budget_share_is_calibrated_again(workdir: Path, tmp_path: Path) -> None:
    import torch

    from models.training.artifacts import load_checkpoint

    current = load_checkpoint(model_dir(workdir) / "cw_chilled-1.pt")
    data = torch.load(model_dir(workdir) / "cw_chilled-1.pt", map_location="cpu", weights_only=True)
    del data["model_budget_share"]  # as saved before 2026-12-07: a threshold for the whole budget
    data["threshold"] = current.threshold / 2
    torch.save(data, tmp_path / "legacy.pt")
    assert load_checkpoint(tmp_path / "legacy.pt").threshold == pytest.approx(current.threshold)


def trained_size(workdir: Path) -> int:
    from models.runtime.features import FeatureSpec

    manifest = json.loads((model_dir(workdir) / "cw_chilled-1.manifest.json").read_text())
    return FeatureSpec.from_dict(manifest["feature_spec"]).input_size


def test_the_int8_ceiling_bounds_every_output_and_a_threshold_at_it_is_refused(
        workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from models.runtime.tflite import TfliteModel
    from models.training import pipeline
    from models.training.artifacts import export_model, load_checkpoint
    from models.training.export import FAULT_SHARES, ExportRejected
    from models.training.tflite_io import int8_output_ceiling

    path = model_dir(workdir) / "cw_chilled-1.tflite"
    ceiling = int8_output_ceiling(path.read_bytes())
    assert ceiling is not None and 0 < ceiling < 1e3
    rng = np.random.default_rng(3)
    x = rng.choice([-8.0, 0.0, 8.0], size=(512, trained_size(workdir))).astype(np.float32)
    assert float(TfliteModel(path).outputs(x).max()) <= ceiling + 1e-4
    # a validation stretch that scores like a fault puts the threshold at the ceiling: a model that never alerts
    trained = load_checkpoint(model_dir(workdir) / "cw_chilled-1.pt")
    monkeypatch.setattr(pipeline, "int8_output_ceiling", lambda _bytes: -1e9)
    with pytest.raises(ExportRejected, match=r"highest output .* would never alert.*What to do"):
        export_model(trained, tmp_path / "dead", name="cw_chilled", version="9", private_key_pem=None)
    assert not (tmp_path / "dead" / "cw_chilled-9.tflite").exists()
    # a calibration whose output range the threshold reaches is not the last word: the next fault share may pass
    calls: list[bytes] = []

    def first_at_the_ceiling(model_bytes: bytes) -> float | None:
        calls.append(model_bytes)
        return -1e9 if len(calls) == 1 else int8_output_ceiling(model_bytes)

    monkeypatch.setattr(pipeline, "int8_output_ceiling", first_at_the_ceiling)
    done = export_model(trained, tmp_path / "second", name="cw_chilled", version="9", private_key_pem=None)
    assert len(calls) >= 2 and done.files.model.exists()
    assert done.manifest.metrics["int8_calibration_fault_share"] == round(FAULT_SHARES[len(calls) - 1], 4)


def test_evaluate_prints_model_beside_baselines(workdir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "eval.json"
    assert coldwatch("evaluate", "--models", str(workdir / "models"), "--seeds", "1", "--scenario",
                     "door_left_open", "--scenario", "sensor_spikes", "--scenario", "compressor_failure",
                     "--json", str(report), "--public-key", str(workdir / "keys" / "fleet.pub")) == 0
    out = capsys.readouterr().out
    assert "static_rule" in out and "rolling_z" in out and "model (int8)" in out and "gateway (model+rules)" in out
    assert "compressor_failure" in out  # skipped: no frozen model
    data = json.loads(report.read_text())
    assert data["skipped_scenarios"] == ["compressor_failure"]
    assert set(data["detectors"]) == {"model (int8)", "gateway (model+rules)", "static_rule", "rolling_z"}
    assert data["detectors"]["static_rule"]["kinds"]["door_left_open"]["incidents"] == 1
    model, gateway = data["detectors"]["model (int8)"], data["detectors"]["gateway (model+rules)"]
    assert gateway["false_alerts"] >= model["false_alerts"]  # the gateway raises the model's alerts and more
    assert all(gateway["kinds"][k]["detected"] >= v["detected"] for k, v in model["kinds"].items())


def test_csv_train_and_causal_score_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from firmware_sim.export import readings_csv
    from firmware_sim.scenarios import generate

    path = tmp_path / "logger.csv"
    path.write_text(readings_csv(generate("door_left_open", 7, days=1.0)))
    assert coldwatch("train", "--csv", str(path), "--epochs", "2", "--out", str(tmp_path / "m"),
                     "--version", "1") == 0
    model = tmp_path / "m" / "cw_csv-1"
    out = tmp_path / "scores.csv"
    capsys.readouterr()
    assert coldwatch("score", "--model", str(model), "--csv", str(path), "--out", str(out)) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = out.read_text().splitlines()
    assert rows[0] == "line,timestamp,sensor,score,above_threshold,alert_id,alert_opened"
    assert len(rows) - 1 == len(path.read_text().splitlines()) - 1 == summary["rows"]
    assert summary["scored"] > 0.9 * summary["rows"]
    # causal: scoring a prefix of the file gives the same scores for the rows it keeps
    lines = path.read_text().splitlines()
    prefix = tmp_path / "prefix.csv"
    prefix.write_text("\n".join(lines[:2000]) + "\n")
    out2 = tmp_path / "scores2.csv"
    assert coldwatch("score", "--model", str(model), "--csv", str(prefix), "--out", str(out2)) == 0
    first = {r.split(",")[0]: r for r in rows[1:]}
    for row in out2.read_text().splitlines()[1:]:
        line, _, _, value, *_ = row.split(",")
        assert first[line].split(",")[3] == value


def test_csv_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,temperature\n2026-01-01T00:00:00Z,4.0\n2026-01-01T00:01:00Z,oops\n")
    assert coldwatch("train", "--csv", str(path), "--out", str(tmp_path / "m")) == 2
    assert "line 3" in capsys.readouterr().err
