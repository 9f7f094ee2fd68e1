"""`coldwatch models score` on users' CSVs: model lookup, scores file, report, warnings, one-line errors."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloud.cli.main import main
from models.runtime.features import FeatureSpec
from models.runtime.manifest import Manifest, sha256_file, write_signed

WINDOW = 4
FEATURES = ("temp_c", "rh_pct", "missing")


class FakeModel:
    """A 'classifier' whose logit is the newest step's normalised temperature (no TFLite needed)."""

    def __init__(self, model: Path | bytes, num_threads: int = 1) -> None:
        self.features = WINDOW * len(FEATURES)

    def outputs(self, inputs: np.ndarray) -> np.ndarray:
        return np.asarray(inputs[:, (WINDOW - 1) * len(FEATURES)][:, None], dtype=np.float32)


@pytest.fixture(autouse=True)
def fake_tflite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("models.runtime.tflite.TfliteModel", FakeModel)


def make_model(root: Path, *, name: str = "cw_csv", version: str = "1", profile: str = "custom",
               created: str = "2026-01-01T00:00:00+00:00", period_s: float = 60.0,
               training_range: dict[str, Any] | None = None) -> Path:
    folder = root / f"{name}-{version}"
    folder.mkdir(parents=True)
    model = folder / f"{name}-{version}.tflite"
    model.write_bytes(b"fake tflite " + version.encode())
    spec = FeatureSpec(WINDOW, period_s, FEATURES, (4.0, 50.0, 0.0), (1.0, 10.0, 1.0))
    manifest = Manifest(name=name, version=version, profile=profile, feature_spec=spec.to_dict(), threshold=2.0,
                        training_range=training_range or {}, metrics={}, sha256=sha256_file(model),
                        created_at=created, architecture="classifier")
    write_signed(manifest, folder, None)
    return folder


def logger_csv(path: Path, *, n: int = 120, hot: range = range(60, 70), header: str = "Date Time,Temp (°C)",
               start: str = "2026-03-10 08:00:00") -> Path:
    t0 = datetime.fromisoformat(start)
    lines = [header] + [f"{(t0 + timedelta(minutes=i)):%Y-%m-%d %H:%M:%S},{9.0 if i in hot else 4.0}"
                        for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    code = main(["models", *args])
    out, err = capsys.readouterr()
    result = json.loads(out) if code == 0 else out  # stdout is exactly one JSON document
    return code, result, err


def test_score_accepts_the_train_out_folder_and_writes_alert_columns(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_model(tmp_path / "models", version="1", created="2026-01-01T00:00:00+00:00")
    newest = make_model(tmp_path / "models", version="2", created="2026-02-01T00:00:00+00:00")
    data = logger_csv(tmp_path / "log.csv")
    out = tmp_path / "scores.csv"
    code, result, err = run(capsys, "score", "--model", str(tmp_path / "models"), "--csv", str(data),
                            "--out", str(out), "--timezone", "Europe/Berlin")
    assert code == 0
    assert result["model"] == "cw_csv-2" and result["model_path"] == str(newest / "cw_csv-2.tflite")
    assert "using the newest, cw_csv-2" in err
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["line", "timestamp", "sensor", "score", "above_threshold", "alert_id", "alert_opened"]
    assert len(rows) == 120 == result["rows"]
    (alert,) = result["alerts"]
    opened = [r for r in rows if r["alert_opened"] == "1"]
    assert len(opened) == 1 and opened[0]["line"] == str(alert["raised_line"]) and opened[0]["alert_id"] == "1"
    assert opened[0]["timestamp"] == "2026-03-10 09:02:00"  # hot from 09:00; open after 2 periods above threshold
    assert alert["raised"] == "2026-03-10T09:02:00+01:00"  # ISO local time in --timezone
    in_alert = [r for r in rows if r["alert_id"] == "1"]
    assert in_alert[0] is opened[0] and all(r["alert_id"] == "0" for r in rows[:60])


@pytest.mark.parametrize("which", ["folder", "tflite", "manifest", "pt"])
def test_score_accepts_the_model_folder_or_any_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     which: str) -> None:
    folder = make_model(tmp_path)
    (folder / "cw_csv-1.pt").write_bytes(b"checkpoint")
    target = {"folder": folder, "tflite": folder / "cw_csv-1.tflite", "manifest": folder / "cw_csv-1.manifest.json",
              "pt": folder / "cw_csv-1.pt"}[which]
    code, result, _ = run(capsys, "score", "--model", str(target), "--csv", str(logger_csv(tmp_path / "l.csv")),
                          "--out", str(tmp_path / "s.csv"))
    assert code == 0 and result["model"] == "cw_csv-1"


def test_score_refuses_a_folder_with_several_profiles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_model(tmp_path, name="cw_csv", profile="custom")
    make_model(tmp_path, name="cw_chilled", profile="chilled")
    code, _, err = run(capsys, "score", "--model", str(tmp_path), "--csv", str(logger_csv(tmp_path / "l.csv")),
                       "--out", str(tmp_path / "s.csv"))
    assert code == 2
    assert "holds models of 2 profiles: chilled" in err and "custom" in err and "pass the folder" in err


def test_report_per_sensor_day_and_episodes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = make_model(tmp_path / "m")
    data = logger_csv(tmp_path / "log.csv", n=1441, hot=range(600, 660))
    code, result, err = run(capsys, "score", "--model", str(folder), "--csv", str(data), "--out",
                            str(tmp_path / "s.csv"), "--report", "--timezone", "America/New_York")
    assert code == 0
    report = result["report"]
    assert report["sensor_days"] == pytest.approx(1.0) and report["alerts"] == 1
    assert report["alerts_per_sensor_day"] == pytest.approx(1.0)
    # raised at 18:02 (2 periods in), cleared 3 periods after the last hot reading (18:59 → 19:03)
    assert report["time_in_alert_s"] == pytest.approx(61 * 60)
    assert "backtest of cw_csv-1 on log.csv (times in America/New_York)" in err
    assert "raised 2026-03-10T18:02:00-04:00 (line 604)" in err  # New York is on summer time since 8 March


def test_missing_channel_warning_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = make_model(tmp_path / "m")
    code, _, err = run(capsys, "score", "--model", str(folder), "--csv", str(logger_csv(tmp_path / "log.csv")),
                       "--out", str(tmp_path / "s.csv"))
    assert code == 0 and "warning: the model uses rh_pct but log.csv has no humidity column (name it with " \
                          "--rh-column)" in err
    with_rh = logger_csv(tmp_path / "rh.csv", header="Date Time,Temp (°C)")
    with_rh.write_text(with_rh.read_text().replace("Temp (°C)\n", "Temp (°C),RH%\n").replace("0\n", "0,50\n"))
    code, _, err = run(capsys, "score", "--model", str(folder), "--csv", str(with_rh), "--out", str(tmp_path / "t.csv"))
    assert code == 0 and "rh_pct" not in err
    # a model trained on a CSV without humidity never saw it either: nothing to warn about
    csv_trained = make_model(tmp_path / "c", training_range={"source": "csv", "columns": {"time": "t"}})
    code, _, err = run(capsys, "score", "--model", str(csv_trained), "--csv", str(tmp_path / "log.csv"), "--out",
                       str(tmp_path / "u.csv"))
    assert code == 0 and "warning" not in err


def test_clock_jump_is_in_the_json_and_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = make_model(tmp_path / "m")
    path = logger_csv(tmp_path / "log.csv", n=60, hot=range(0))
    lines = path.read_text().splitlines()
    lines[31:] = [line.replace("2026-03-10 08:", "2026-03-10 07:") for line in lines[31:]]
    path.write_text("\n".join(lines) + "\n")
    code, result, err = run(capsys, "score", "--model", str(folder), "--csv", str(path), "--out",
                            str(tmp_path / "s.csv"))
    assert code == 0
    (jump,) = [n for n in result["notes"] if n["kind"] == "clock_jump"]
    assert jump["lines"] == [31, 32] and jump["back_s"] == 3600 - 60
    assert "note: sensor sensor: clock jumps back 59 min at line 32" in err
    assert result["csv"]["segments"] == 2 and result["rows"] == 60


def test_ambiguous_dates_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = make_model(tmp_path / "m")
    path = tmp_path / "log.csv"
    path.write_text("time,temp\n" + "".join(f"0{d}/03/2025 10:{m:02d},4.0\n" for d in (1, 2) for m in range(60)))
    args = ["score", "--model", str(folder), "--csv", str(path), "--out", str(tmp_path / "s.csv")]
    code, out, err = run(capsys, *args)
    assert code == 2 and out == "" and err.count("\n") == 1 and "ambiguous dates" in err
    code, result, _ = run(capsys, *args, "--monthfirst")
    assert code == 0 and result["csv"]["date_order"] == "month-first"


@pytest.mark.parametrize("case, message", [
    ("no_model", "error: no model at"),
    ("empty_models", "error: no model under"),
    ("checkpoint_only", "is a training checkpoint with no exported model"),
    ("no_csv", "error: cannot read"),
    ("out_is_csv", "is the input file"),
    ("out_dir_missing", "error: cannot write"),
    ("bad_zone", "error: unknown time zone"),
    ("binary", "NUL characters"),
    ("undecodable", "cannot decode log.csv as utf-16"),
])
def test_bad_inputs_exit_2_with_one_line_and_no_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          case: str, message: str) -> None:
    folder = make_model(tmp_path / "models")
    data = logger_csv(tmp_path / "log.csv")
    args = {"model": str(folder), "csv": str(data), "out": str(tmp_path / "s.csv")}
    extra: list[str] = []
    if case == "no_model":
        args["model"] = str(tmp_path / "nothing")
    elif case in ("empty_models", "checkpoint_only"):
        args["model"] = str(tmp_path / "empty")
        (tmp_path / "empty").mkdir()
        if case == "checkpoint_only":
            (tmp_path / "empty" / "cw_csv-9.pt").write_bytes(b"x")
            args["model"] = str(tmp_path / "empty" / "cw_csv-9.pt")
    elif case == "no_csv":
        args["csv"] = str(tmp_path / "missing.csv")
    elif case == "out_is_csv":
        args["out"] = str(data)
    elif case == "out_dir_missing":
        args["out"] = str(tmp_path / "no" / "such" / "s.csv")
    elif case == "bad_zone":
        extra = ["--timezone", "Mars/Olympus"]
    elif case == "binary":
        data.write_bytes(bytes(range(256)))
    elif case == "undecodable":
        extra = ["--encoding", "utf-16"]
        data.write_bytes(b"abc")
    code, out, err = run(capsys, "score", "--model", args["model"], "--csv", args["csv"], "--out", args["out"],
                         *extra)
    assert code == 2 and out == ""
    *progress, last = err.splitlines()
    assert message in last and last.startswith("coldwatch: error: ") and "Traceback" not in err
    assert all(line.startswith(("read ", "note: ", "warning: ")) for line in progress)


def test_train_csv_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("Serial: 1\nLogger: X\n")
    code, out, err = run(capsys, "train", "--csv", str(path), "--out", str(tmp_path / "m"))
    assert code == 2 and out == ""
    assert err.startswith("coldwatch: error: no header with a timestamp and a temperature column")
    assert "'Serial: 1'" in err


def test_scores_follow_arrival_order_with_utc_stamps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = make_model(tmp_path / "m")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    lines = ["ts_ms,temp_c"] + [f"{int((t0 + timedelta(minutes=i)).timestamp() * 1000)},4.0" for i in range(30)]
    path = tmp_path / "epoch.csv"
    path.write_text("\n".join(lines) + "\n")
    code, result, _ = run(capsys, "score", "--model", str(folder), "--csv", str(path), "--out",
                          str(tmp_path / "s.csv"))
    # as on a gateway, the first window scored ends a full window after the first reading (none with copied steps)
    assert code == 0 and result["sample_period_s"] == 60.0 and result["scored"] == 30 - (WINDOW - 1)
