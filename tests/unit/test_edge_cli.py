"""`coldwatch-agent decode` on the Ruuvi RAWv2 specification's test vectors, and the replay input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from edge_agent.inputs.replay import ReplayInput
from tests.conftest import EDGE_VENV

VECTORS = {
    "0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F": {
        "mac": "cb:b8:33:4c:88:4f", "temp_c": 24.3, "rh_pct": 53.49, "pressure_pa": 100044, "acc_mg": [4, -4, 1036],
        "battery_mv": 2977, "tx_power_dbm": 4, "movement": 66, "seq": 205},
    "057FFFFFFEFFFE7FFF7FFF7FFFFFDEFEFFFECBB8334C884F": {
        "mac": "cb:b8:33:4c:88:4f", "temp_c": 163.835, "rh_pct": 163.835, "pressure_pa": 115534,
        "acc_mg": [32767, 32767, 32767], "battery_mv": 3646, "tx_power_dbm": 20, "movement": 254, "seq": 65534},
    "058001000000008001800180010000000000CBB8334C884F": {
        "mac": "cb:b8:33:4c:88:4f", "temp_c": -163.835, "rh_pct": 0.0, "pressure_pa": 50000,
        "acc_mg": [-32767, -32767, -32767], "battery_mv": 1600, "tx_power_dbm": -40, "movement": 0, "seq": 0},
    "058000FFFFFFFF800080008000FFFFFFFFFFFFFFFFFFFFFF": {
        "mac": None, "temp_c": None, "rh_pct": None, "pressure_pa": None, "acc_mg": None, "battery_mv": None,
        "tx_power_dbm": None, "movement": None, "seq": None},
}


@pytest.mark.parametrize(("hex_frame", "expected"), VECTORS.items())
def test_decode_prints_the_specification_values(edge_python: Path, hex_frame: str, expected: dict[str, object]) -> None:
    out = subprocess.run([str(EDGE_VENV / "bin" / "coldwatch-agent"), "decode", hex_frame],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    assert json.loads(out) == expected


def test_decode_refuses_garbage_with_a_reason(edge_python: Path) -> None:
    result = subprocess.run([str(EDGE_VENV / "bin" / "coldwatch-agent"), "decode", "0301"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 1 and "unsupported_format" in result.stderr


def test_replay_delivers_every_line_in_order_including_bad_ones(tmp_path: Path) -> None:
    capture = tmp_path / "capture.hex"
    capture.write_text("# captured at a customer's cold room\n0512\n\nnot hex\n4357 0100\n")
    got: list[bytes] = []
    replay = ReplayInput(str(capture), speed=1000)
    replay.start(got.append)
    assert replay.done.wait(5)
    replay.stop()
    assert got == [bytes.fromhex("0512"), b"not hex", bytes.fromhex("43570100")]
