"""Live mode as a real process sending to real UDP sockets: the flat invocation deploy/stack.py uses,
a scenario with its labels file, the `run` subcommand and radio realism."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_sim.export import read_labels
from firmware_sim.fleet import sensor_mac
from protocol.datagram import Datagram, unpack_datagram
from protocol.ruuvi import RuuviFrame, decode_rawv2

SIM = [sys.executable, "-m", "firmware_sim"]


@pytest.fixture
def udp() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    yield sock
    sock.close()


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()
    return f"{host}:{port}"


def _run(argv: list[str], sock: socket.socket, timeout: float = 60) -> tuple[dict[str, object], list[Datagram]]:
    proc = subprocess.Popen([*SIM, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    received: list[Datagram] = []
    while True:
        try:
            received.append(unpack_datagram(sock.recv(256)))
        except TimeoutError:
            if proc.poll() is not None:
                break
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode()
    return json.loads(out.decode().strip().splitlines()[-1]), received


def _by_sensor(received: list[Datagram]) -> dict[str, list[tuple[Datagram, RuuviFrame]]]:
    out: dict[str, list[tuple[Datagram, RuuviFrame]]] = {}
    for d in received:
        out.setdefault(d.mac, []).append((d, decode_rawv2(d.payload)))
    return out


def test_flat_invocation_as_the_stack_runs_it(udp: socket.socket) -> None:
    summary, received = _run(["--target", _address(udp), "--first-gateway-index", "3", "--sensors", "4",
                              "--profiles", "frozen,chilled", "--interval", "1", "--speed", "40",
                              "--seed", "4", "--ticks", "40"], udp)
    assert summary["sent"] == len(received) == 160
    assert summary["per_gateway"] == {_address(udp): 160}
    sensors = _by_sensor(received)
    assert sorted(sensors) == [sensor_mac(3, i) for i in range(4)]
    for i, mac in enumerate(sorted(sensors)):
        rows = sensors[mac]
        assert [f.seq for _, f in rows] == list(range(40))
        ts = [d.ts_ms for d, _ in rows]
        assert all(b - a == 1000 for a, b in itertools.pairwise(ts))
        assert ts[0] == summary["first_ts_ms"] and ts[-1] == summary["last_ts_ms"]
        assert all(f.battery_mv is not None and f.battery_mv > 2000 for _, f in rows)
        temps = [f.temp_c for _, f in rows if f.temp_c is not None]
        if i % 2 == 0:
            assert all(-30 < t < -10 for t in temps)
        else:
            assert all(-2 < t < 8 for t in temps)


def test_live_scenario_writes_labels(udp: socket.socket, tmp_path: Path) -> None:
    labels = tmp_path / "labels.json"
    summary, received = _run(["--target", _address(udp), "--sensors", "3", "--interval", "60", "--speed", "36000",
                              "--ticks", "720", "--scenario", "door_left_open", "--labels", str(labels)], udp)
    assert summary["sent"] == 3 * 720 and len(received) >= 0.95 * 3 * 720  # loopback may drop a few
    found = read_labels(labels)
    door = [lab for lab in found if lab.kind == "door_left_open"]
    assert len(door) == 1 and door[0].sensor == sensor_mac(0, 0) and not door[0].benign
    hit = [f.temp_c for d, f in _by_sensor(received)[sensor_mac(0, 0)]
           if d.ts_ms is not None and door[0].start_ms <= d.ts_ms <= door[0].end_ms and f.temp_c is not None]
    assert max(hit) > 6.0  # a chilled room with the door open leaves its 0–4 °C band


def test_run_subcommand_with_radio_realism(udp: socket.socket, tmp_path: Path) -> None:
    summary, received = _run(["run", "sensor_dropout", "--gateway", _address(udp), "--sensors", "4",
                              "--interval", "60", "--speed", "72000", "--days", "0.5", "--radio-realism",
                              "--labels", str(tmp_path / "l.csv")], udp)
    sent = int(str(summary["sent"]))
    assert 0 < sent < 4 * 720  # the dropout and radio losses remove frames
    frames = _by_sensor(received)
    seqs = [f.seq for _, f in frames[sensor_mac(0, 0)]]
    assert seqs[0] == 0 and max(b - a for a, b in itertools.pairwise(seqs)) > 30  # the silent hours
    assert any(lab.kind == "sensor_dropout" for lab in read_labels(tmp_path / "l.csv"))
