"""models training parts that need no simulator run: normal data selection, synthetic fault windows, the
classifier's loss, input clipping and the int8 check's statistics."""

from __future__ import annotations

import numpy as np
import pytest

from models.runtime.features import INPUT_CLIP, default_spec, normalise
from models.training import augment
from models.training.cli import ARCHITECTURE_CHOICES
from models.training.data import Series, settled
from models.training.export import compare
from models.training.nets import ARCHITECTURES, build
from models.training.train import fit, select_device

MIN = 60_000


def freezer(temp: np.ndarray) -> Series:
    n = len(temp)
    return Series("s", "frozen", np.arange(n, dtype=np.int64) * MIN, temp.astype(float), np.full(n, 65.0),
                  np.full(n, 3000.0))


def cycling(n: int) -> np.ndarray:
    """A freezer's thermostat cycle: -22.5 … -19.5 °C, 40 min per cycle."""
    phase = np.arange(n) % 40
    return np.where(phase < 30, -22.5 + phase * 0.1, -19.5 - (phase - 30) * 0.3)


def test_the_cli_offers_every_network() -> None:
    assert ARCHITECTURE_CHOICES == ARCHITECTURES


def test_a_forecaster_needs_two_channels() -> None:
    with pytest.raises(ValueError, match="2 channels"):
        build("forecaster", 30, 1)


def test_settled_starts_an_hour_after_the_pull_down_reached_the_band() -> None:
    pull_down = np.linspace(20.0, -19.0, 300)  # reaches -18 (the frozen band's top) at minute ~292
    s = settled(freezer(np.concatenate([pull_down, cycling(600)])), 1.0)
    first_inside = int(np.argmax(pull_down <= -18.0))
    assert s.ts_ms[0] == (first_inside + 60) * MIN
    assert np.all(s.temp_c <= -18.0)
    assert len(settled(freezer(np.full(100, 5.0)), 1.0).ts_ms) == 0  # never cold: nothing normal to learn


def test_a_rise_counts_as_a_fault_only_above_the_series_normal_top(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = default_spec(features=("temp_c", "temp_rate"))  # the absolute level, to see where each window ends
    normal = freezer(cycling(2000))
    monkeypatch.setattr(augment, "FAULTS", (augment.FaultKind(augment.warming, 20.0, above_normal_top=True),))
    windows = augment.fault_windows(spec, [normal], seed=1, stride=1)
    top = float(np.percentile(normal.temp_c, augment.NORMAL_TOP_PERCENTILE)) + augment.NORMAL_TOP_MARGIN_C
    newest = windows[:, -1, spec.features.index("temp_c")]
    assert len(windows) > 0 and np.all(newest > top)
    monkeypatch.setattr(augment, "FAULTS", (augment.FaultKind(augment.warming, 20.0),))
    every = augment.fault_windows(spec, [normal], seed=1, stride=1)
    assert len(every) > len(windows)  # the same rise, counted from 20 min on and without the 6 h cap


def test_a_sagging_cell_is_a_fault() -> None:
    normal = freezer(cycling(200))
    after = np.arange(200) >= 100
    sagged = augment.battery_sag(normal, after, np.random.default_rng(0))
    assert np.all(sagged.battery_mv[:100] == 3000.0) and np.all(sagged.battery_mv[100:] <= 3000.0 - 150.0)


def test_normalised_inputs_are_clipped() -> None:
    spec = default_spec(window=2)
    raw = np.zeros((1, 2, spec.channels), dtype=np.float32)
    raw[0, 0, 0], raw[0, 1, 0] = 1e4, -1e4
    out = normalise(spec, raw)
    assert out[0, 0] == INPUT_CLIP and out[0, spec.channels] == -INPUT_CLIP


def test_the_classifier_learns_faults_apart_from_normal_windows() -> None:
    rng = np.random.default_rng(0)
    normal = rng.normal(0.0, 1.0, (512, 8)).astype(np.float32)
    faults = (rng.normal(0.0, 1.0, (512, 8)) + 3.0).astype(np.float32)
    module = build("classifier", 8, 2, hidden=8)
    kwargs = {"architecture": "classifier", "channels": 2, "epochs": 40, "batch_size": 64, "learning_rate": 1e-2,
              "device": select_device("cpu"), "seed": 0}
    with pytest.raises(ValueError, match="synthetic fault windows"):
        fit(module, normal, **kwargs)  # type: ignore[arg-type]
    fit(module, normal, negatives=faults, **kwargs)  # type: ignore[arg-type]
    import torch

    with torch.no_grad():
        logits = module(torch.from_numpy(np.concatenate([normal[:100], faults[:100]]))).numpy()[:, 0]
    assert np.mean(logits[:100] < 0) > 0.9 and np.mean(logits[100:] > 0) > 0.9


def test_int8_score_error_is_measured_where_decisions_can_flip() -> None:
    rng = np.random.default_rng(0)
    crowd = rng.uniform(-8.0, -4.0, 900)  # clearly normal: int8 rounding reorders them freely
    near = np.linspace(0.0, 20.0, 100)
    fp32 = np.concatenate([crowd, near]).astype(np.float32)
    int8 = np.concatenate([crowd + rng.normal(0.0, 0.5, 900), near + 0.1]).astype(np.float32)
    check = compare(fp32, int8, threshold=4.0)
    spread = 4.0 - float(np.median(fp32))
    assert check.band_windows == int(np.sum(np.abs(fp32 - 4.0) <= spread / 2))
    assert check.score_error == pytest.approx(0.1 / spread, rel=1e-3) and check.decision_agreement == 1.0
    assert check.rank_correlation < 0.99  # the crowd's order, which decides nothing, is gone
    shifted = compare(fp32, np.concatenate([crowd, near - 3.0]).astype(np.float32), threshold=4.0)
    assert shifted.score_error == pytest.approx(3.0 / spread, rel=1e-3)  # scores near the threshold moved: caught
    assert compare(fp32, fp32, threshold=-100.0).score_error == float("inf")  # threshold below the median


def test_a_fault_on_a_channel_the_data_lacks_teaches_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = default_spec()
    normal = freezer(cycling(2000))
    no_battery = Series("s", "frozen", normal.ts_ms, normal.temp_c, normal.rh_pct, np.full(2000, np.nan))
    monkeypatch.setattr(augment, "FAULTS", (augment.FaultKind(augment.battery_sag, 3.0),))
    assert len(augment.fault_windows(spec, [normal], seed=1, stride=1)) > 0
    assert len(augment.fault_windows(spec, [no_battery], seed=1, stride=1)) == 0  # identical to normal: no positive


def test_the_classifiers_logits_stay_near_their_bound() -> None:
    from models.training.train import LOGIT_BOUND, predict

    rng = np.random.default_rng(0)
    normal = rng.normal(0.0, 1.0, (512, 20)).astype(np.float32)
    faults = rng.normal(8.0, 1.0, (512, 20)).astype(np.float32)  # trivially apart: an unbounded logit would soar
    module = build("classifier", 20, 1)
    fit(module, normal, architecture="classifier", channels=1, epochs=60, batch_size=64, learning_rate=3e-2,
        device=select_device("cpu"), seed=0, negatives=faults)
    logits = predict(module, np.concatenate([normal, faults]))
    assert float(np.abs(logits).max()) < 2 * LOGIT_BOUND  # int8's 256 output steps then resolve the threshold


def test_recovered_excursion_windows_show_the_space_back_in_its_cycle_below_a_warm_baseline() -> None:
    spec = default_spec()
    normal = freezer(cycling(3 * 24 * 60))
    windows = augment.recovered_excursion_windows(spec, [normal] * 6, seed=3, stride=5)
    assert len(windows) > 0
    drift = windows[:, :, spec.features.index("temp_drift")]
    dev = windows[:, :, spec.features.index("temp_dev")]
    # The window itself is an ordinary cycle (its own deviations within the cycle's 3 °C) ...
    assert np.nanmax(np.abs(dev)) <= 3.0
    # ... but the baseline still holds the warm hours: the space reads below it, which is normal after recovery.
    assert np.nanmean(drift) < -0.3
    no_drift = default_spec(features=("temp_dev", "temp_rate"))
    assert len(augment.recovered_excursion_windows(no_drift, [normal], seed=3, stride=5)) == 0
