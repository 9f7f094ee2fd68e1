"""End-to-end figures on real processes: ingest (mosquitto → 2 workers → influxd) vs raw influxd writes,
the agent's accept path vs bare frame decoding, and the agent's memory vs a bare interpreter."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from bench.results import Result
from cloud.tsdb.influx import InfluxClient
from cloud.tsdb.lineprotocol import readings_lines
from deploy.stack import CLOUD_BIN, EDGE_BIN, Gateway, LocalStack, make_gateways
from edge_agent.config import DetectConfig
from edge_agent.decode import Decoder
from edge_agent.detect.detector import Detector
from edge_agent.metrics import AgentMetrics
from edge_agent.outbox import Outbox
from protocol import Datagram, Reading, TelemetryBatch, encode, encode_rawv2, pack_datagram, unpack_datagram
from protocol.ruuvi import RUUVI_COMPANY_ID, RuuviFrame, decode_rawv2
from protocol.topics import topic

T0 = 1_767_225_600_000
SENSORS = 200
BATCH = 500
SENTINELS = 8  # end markers after the load (bench/fleet.py does the same)
SENTINEL_SENSOR = "c2:00:00:02:00:00"
SENTINEL_POLL_S = 0.05
SIM_TAGS_PER_GATEWAY = 250  # the simulator's MACs allow 256 tags per simulated gateway
RSS_SAMPLE_S = 10.0  # an agent's RSS is the median of this long's samples (its ticks' arrays come and go)
TICK_FRAMES = 5_000  # frames one agent tick takes in a burst (a flush interval's worth at 5,000 frames/s; fewer
# than a second of the bursts the agent is sized for, so the bulk path is not flattered)


def _readings(n: int) -> list[Reading]:
    return [Reading(sensor=f"c2:00:00:01:{(i % SENSORS) // 256:02x}:{i % SENSORS % 256:02x}",
                    ts=T0 + (i // SENSORS) * 1000, profile="chilled", seq=(i // SENSORS) % 65535,
                    temp_c=3.0 + (i % 13) * 0.005, rh_pct=80.0, battery_mv=2950, rssi_dbm=-70) for i in range(n)]


def _sentinels(first_seq: int) -> list[bytes]:
    """The end markers: SENTINELS messages of one reading each of a sensor the load does not have."""
    return [encode(TelemetryBatch(gateway="bench-01", seq=first_seq + i, sent_at=T0, readings=[
        Reading(sensor=SENTINEL_SENSOR, ts=T0 + i, profile="chilled", seq=i + 1, temp_c=3.0)]))
        for i in range(SENTINELS)]


def _count(client: InfluxClient) -> int:
    series = client.query("SELECT count(temp_c) FROM reading")
    rows = series[0].rows() if series else []
    return int(rows[0]["count"]) if rows else 0


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _count_sensor(client: InfluxClient, sensor: str) -> int:
    series = client.query("SELECT count(temp_c) FROM reading WHERE sensor = $sensor", {"sensor": sensor})
    rows = series[0].rows() if series else []
    return int(rows[0]["count"]) if rows else 0


@dataclass
class IngestRun:
    """One ingest measurement: readings/s against raw /write of the same lines, and the workers' RSS."""

    rate: float
    raw_rate: float
    rss_early_mib: float  # the workers' RSS (summed) once `rss_after` readings were stored
    rss_end_mib: float


def ingest_vs_raw_influx(total: int = 100_000, workers: int = 2, *, database_url: str = "",
                         rss_after: int = 100_000) -> IngestRun:
    """Readings/s through MQTT + ingest workers into influxd, against one client POSTing the same points. The end
    is taken when 8 end markers sent after the load are stored (each worker writes them with its last batch), then
    every point is counted;
    `database_url`: the fleet database (default SQLite)."""
    readings = _readings(total)
    last_sensor = readings[-1].sensor
    per_sensor = sum(1 for r in readings if r.sensor == last_sensor)
    with tempfile.TemporaryDirectory(prefix="coldwatch-bench-") as tmp:
        stack = LocalStack(workdir=Path(tmp), gateways=make_gateways([("bench-01", 1, ["chilled"])]),
                           say=lambda _line: None, database_url=database_url)
        try:
            stack.start_infra()
            stack.provision()
            assert stack.influxd is not None and stack.mosquitto is not None
            raw = InfluxClient(url=stack.influxd.url, database="rawref")
            raw.execute('CREATE DATABASE "rawref"')
            lines = readings_lines("bench-01", readings).lines
            t0 = time.perf_counter()
            for i in range(0, len(lines), 5000):
                raw.write(lines[i:i + 5000])
            raw_rate = total / (time.perf_counter() - t0)
            del lines

            stack.start_ingest(workers=workers)
            time.sleep(2.0)  # workers subscribe
            pids = [p.pid for name, p in stack.procs.items() if name.startswith("ingest-")]
            payloads = [encode(TelemetryBatch(gateway="bench-01", seq=1 + i // BATCH, sent_at=T0,
                                              readings=readings[i:i + BATCH])) for i in range(0, total, BATCH)]
            gw = stack.gateways[0]
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-publisher",
                                 protocol=MQTTProtocolVersion.MQTTv5)
            client.username_pw_set(gw.gateway_id, gw.password)
            client.max_inflight_messages_set(100)
            client.connect("127.0.0.1", stack.mosquitto.port)
            client.loop_start()
            stored = InfluxClient(url=stack.influxd.url, database=stack.influx_db)
            early_at = min(rss_after, total) * len(payloads) // total  # the payload after which to look at RSS
            rss_early = 0.0
            t0 = time.perf_counter()
            infos = []
            for n, payload in enumerate(payloads, 1):
                infos.append(client.publish(topic(gw.gateway_id, "telemetry"), payload, qos=1))
                if n == early_at:
                    for info in infos:
                        info.wait_for_publish(timeout=60)
                    deadline = time.monotonic() + 120
                    while _count_sensor(stored, last_sensor) < per_sensor * early_at // len(payloads) \
                            and time.monotonic() < deadline:
                        time.sleep(0.05)
                    rss_early = sum(_rss_mib(pid) for pid in pids)
            # End markers, one reading each: every worker gets some (the broker deals them round robin) and writes
            # them with its last batch (a worker writes in the order it receives), so polling for the 8 points is
            # cheap and exact to SENTINEL_POLL_S; the full count is checked after the clock stops.
            for payload in _sentinels(len(payloads) + 1):
                infos.append(client.publish(topic(gw.gateway_id, "telemetry"), payload, qos=1))
            for info in infos:
                info.wait_for_publish(timeout=60)
            deadline = time.monotonic() + 300
            while _count_sensor(stored, SENTINEL_SENSOR) < SENTINELS and time.monotonic() < deadline:
                time.sleep(SENTINEL_POLL_S)
            elapsed = time.perf_counter() - t0
            if _count(stored) < total + SENTINELS:  # a re-delivered batch may still be on its way: it counts too
                while _count(stored) < total + SENTINELS and time.monotonic() < deadline:
                    time.sleep(0.2)
                elapsed = time.perf_counter() - t0
            if (got := _count(stored) - SENTINELS) != total:
                raise RuntimeError(f"ingest stored {got} of {total} readings")
            rss_end = sum(_rss_mib(pid) for pid in pids)
            client.disconnect()
            client.loop_stop()
        finally:
            stack.stop()
    return IngestRun(rate=total / elapsed, raw_rate=raw_rate, rss_early_mib=rss_early, rss_end_mib=rss_end)


def slice_sim_to_influx(sensors: int = 100, speed: float = 100.0, ticks: int = 300) -> list[Result]:
    """The whole slice (coldwatch-sim → UDP → coldwatch-agent → mosquitto → 2 ingest workers → influxd):
    readings/s from the first frame sent to the last point stored, against the rate the simulator offered."""
    with tempfile.TemporaryDirectory(prefix="coldwatch-bench-") as tmp:
        stack = LocalStack(workdir=Path(tmp), gateways=make_gateways([("bench-01", sensors, ["chilled"])]),
                           say=lambda _line: None)
        try:
            stack.start_infra()
            stack.provision()
            stack.start_ingest(workers=2)
            stack.start_agents()
            time.sleep(2.0)
            assert stack.influxd is not None
            stored = InfluxClient(url=stack.influxd.url, database=stack.influx_db)
            t0 = time.perf_counter()
            sim = stack.start_sim_for(stack.gateways[0], speed=speed, ticks=ticks)
            summary = stack.sim_summary(sim, timeout=120)
            offered = int(str(summary["sent"])) / (time.perf_counter() - t0)
            sent = int(str(summary["sent"]))
            deadline = time.monotonic() + 120
            while _count(stored) < sent and time.monotonic() < deadline:
                time.sleep(0.1)
            arrived = _count(stored)
            rate = arrived / (time.perf_counter() - t0)
        finally:
            stack.stop()
    return [Result("slice_sim_to_influx", rate, "readings/s", f"rate the simulator offered ({sensors} tags)",
                   offered, higher_is_better=True),
            Result("slice_delivered_fraction", arrived / sent, "fraction", "readings sent", 1.0,
                   higher_is_better=True)]


def agent_accept_path(n: int = 30_000) -> list[Result]:
    """Envelopes/s through decode → rules → outbox (SQLite WAL, a transaction per tick) in ticks, as the agent takes a
    burst, vs bare envelope + RAWv2 decoding."""
    frames = [pack_datagram(Datagram(mac=f"c2:00:00:00:00:{i % 64:02x}", rssi_dbm=-70, company_id=RUUVI_COMPANY_ID,
                                     ts_ms=T0 + i * 1000,
                                     payload=encode_rawv2(RuuviFrame(mac=f"c2:00:00:00:00:{i % 64:02x}", temp_c=3.0,
                                                                     rh_pct=80.0, battery_mv=3000, seq=i % 65535))))
              for i in range(n)]
    t0 = time.perf_counter()
    for data in frames:
        decode_rawv2(unpack_datagram(data).payload)
    bare = n / (time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as tmp:
        metrics = AgentMetrics()
        decoder = Decoder(lambda _mac: "chilled", metrics)
        box = Outbox(Path(tmp) / "outbox.sqlite", "bench", metrics, batch_max_readings=1000)
        detector = Detector("bench", DetectConfig())
        t0 = time.perf_counter()
        for start in range(0, n, TICK_FRAMES):  # as the agent's ticks take a burst: decoded on arrival, then in bulk
            readings = [r for data in frames[start:start + TICK_FRAMES] if (r := decoder.decode(data)) is not None]
            detector.observe_many(readings)
            box.stage_many(readings)
            box.flush()
        agent = n / (time.perf_counter() - t0)
        box.close()
    return [Result("agent_decode_detect_outbox", agent, "frames/s", "bare unpack_datagram + decode_rawv2", bare,
                   higher_is_better=True)]


def _rss_kib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return float(line.split()[1])
    return float("nan")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _install_agent_models(models_dir: Path, sample_period_s: float) -> Path:
    """A signed int8 model for each simulated profile, installed and active in an agent's model store, as the updater
    leaves them; returns the public key the agent trusts. The network is a small one trained on the simulator; its
    manifest declares `sample_period_s`, so at 1 s every tag has a window scored every second (60× a default
    model's cadence: the worst case for the agent's CPU) and the first ones 29 s after a tag is first heard."""
    import datetime as dt
    import shutil

    from edge_agent.updater import ModelStore
    from models.runtime.features import FeatureSpec
    from models.runtime.manifest import Manifest, generate_keypair, sha256_file, write_signed
    from models.training.export import convert_int8
    from models.training.train import TrainConfig, train_profile

    trained = train_profile(TrainConfig(profile="chilled", sensors=4, days=1.0, validation_sensors=2,
                                        validation_days=0.5, epochs=2))
    spec = FeatureSpec.from_dict({**trained.spec.to_dict(), "sample_period_s": sample_period_s})
    private_pem, public_raw = generate_keypair()
    models_dir.mkdir(parents=True, exist_ok=True)
    key = models_dir.parent / "fleet.pub"
    key.write_bytes(public_raw)
    store = ModelStore(models_dir, [public_raw])
    network = models_dir.parent / "network.tflite"
    convert_int8(trained, network)
    for profile in ("chilled", "frozen"):
        manifest = Manifest(name=f"{profile}_ae", version="1", profile=profile, feature_spec=spec.to_dict(),
                            threshold=trained.threshold, training_range=trained.training_range, metrics={},
                            sha256=sha256_file(network), created_at=dt.datetime.now(dt.UTC).isoformat())
        folder = models_dir / manifest.stem
        folder.mkdir(parents=True)
        shutil.copy(network, folder / f"{manifest.stem}.tflite")
        write_signed(manifest, folder, private_pem)
        store.activate(profile, manifest.stem)
    return key


def agent_tags_at_1hz(tags: int = 200, seconds: float = 20.0, warmup_s: float = 35.0,
                      steady_s: float = 0.0, model: bool = True) -> list[Result]:
    """A real agent hearing `tags` tags once a second, with every rule and an active model per profile whose windows
    come every second per tag (`_install_agent_models`): its CPU (% of one core, over `seconds` once every tag's
    windows are scored) and RSS, against the budget (5 % of a core for 200 tags, 25 % for 5,000) and a bare
    `python -c "import paho.mqtt, numpy"` process. A tag's history is a fixed-size ring allocated when it is first
    heard (edge_agent/detect/history.py); the rate rule's 5-minute window fills as readings come, so the RSS is
    taken `steady_s` after the tags start when given (310 s: every structure full), as the median of
    `RSS_SAMPLE_S` of samples (a tick's arrays come and go; their peak is in the note). At 5,000 tags the CPU is
    taken over 265 s (a 20 s figure varied 20-31 % from run to run, and the pull-down verdicts come once a
    minute). Frames the agent received are
    checked against the simulator's count and the windows it scored are counted, so a CPU figure is never that of
    an agent that fell behind or of one without a model. Without `model` (a gateway that has no trusted keys yet,
    rules only) the figures are named `..._rules_only`."""
    budget = 5.0 if tags <= 200 else 25.0
    bare = subprocess.Popen([str(EDGE_BIN / "python"), "-c", "import paho.mqtt.client, numpy, time; time.sleep(600)"])
    with tempfile.TemporaryDirectory(prefix="coldwatch-bench-") as tmp:
        extra = ""
        if model:
            models_dir = Path(tmp) / "models" / "store"
            key = _install_agent_models(models_dir, sample_period_s=1.0)
            extra = f'[updater]\npublic_keys = ["{key}"]\nmodels_dir = "{models_dir}"\n'
        stack = LocalStack(workdir=Path(tmp), gateways=make_gateways([("bench-01", min(tags, SIM_TAGS_PER_GATEWAY),
                                                                        ["chilled", "frozen"])]),
                           say=lambda _line: None)
        stack.gateways[0].agent_extra = extra
        try:
            stack.start_infra()
            stack.start_agents()
            gw = stack.gateways[0]
            agent_pid = stack.procs["agent-bench-01"].pid
            sim = _sim_at_1hz(stack, gw, tags, duration=max(seconds + warmup_s + RSS_SAMPLE_S, steady_s) + 1)
            started = time.monotonic()
            time.sleep(warmup_s)  # every tag's first window is due 29 s after it is first heard
            scored0 = _agent_counters(gw.metrics_port).get("coldwatch_agent_windows_scored_total", 0.0)
            cpu0, t0 = _cpu_s(agent_pid), time.monotonic()
            time.sleep(seconds)
            cpu_pct = (_cpu_s(agent_pid) - cpu0) / (time.monotonic() - t0) * 100
            scored = _agent_counters(gw.metrics_port).get("coldwatch_agent_windows_scored_total", 0.0) - scored0
            time.sleep(max(0.0, steady_s - warmup_s - seconds - RSS_SAMPLE_S))
            rss_samples = []  # a tick's arrays come and go: the median of 10 s, its peak in the note
            for _ in range(int(RSS_SAMPLE_S / 0.25)):
                rss_samples.append(_rss_kib(agent_pid) / 1024)
                time.sleep(0.25)
            agent_rss, rss_at = statistics.median(rss_samples), time.monotonic() - started
            bare_rss = _rss_kib(bare.pid) / 1024
            sent = int(str(stack.sim_summary(sim, timeout=60)["sent"]))
            time.sleep(2.0)  # the last tick
            received = _agent_counters(gw.metrics_port).get("coldwatch_agent_frames_received_total", 0.0)
        finally:
            stack.stop()
            bare.kill()
            bare.wait()
    note = (f"{received:,.0f} of {sent:,} frames received; {scored / seconds:,.0f} windows scored a second; CPU over "
            f"{seconds:.0f} s; RSS the median of {RSS_SAMPLE_S:.0f} s up to {rss_at:.0f} s "
            f"(peak {max(rss_samples):.1f} MiB)")
    print(f"    {tags} tags at 1 Hz: {note}", file=sys.stderr)
    if model and not scored:
        raise RuntimeError(f"the agent scored no window with {tags} tags: its models were not loaded")
    suffix = "" if model else "_rules_only"
    return [Result(f"agent_cpu_{tags}_tags_1hz{suffix}", cpu_pct, "% of a core", "budget", budget,
                   higher_is_better=False, note=note),
            Result(f"agent_rss_{tags}_tags_1hz{suffix}", agent_rss, "MiB", "bare python + paho + numpy", bare_rss,
                   higher_is_better=False, note=note)]


def _sim_at_1hz(stack: LocalStack, gw: Gateway, tags: int, duration: float) -> subprocess.Popen[bytes]:
    """The simulator sending `tags` tags once a second to `gw`'s agent. A simulated gateway has at most 256 tags
    (their MACs), so more tags come as several simulated gateways all aimed at the one agent (tags it has no
    profile for take its default profile, chilled)."""
    if tags <= SIM_TAGS_PER_GATEWAY:
        return stack.start_sim_for(gw, interval=1.0, speed=1.0, duration=duration)
    groups = -(-tags // SIM_TAGS_PER_GATEWAY)
    if tags % groups:
        raise ValueError(f"{tags} tags do not split evenly into {groups} simulated gateways")
    argv = [str(CLOUD_BIN / "coldwatch-sim"), *(a for _ in range(groups) for a in ("--target",
                                                                                  f"127.0.0.1:{gw.udp_port}")),
            "--sensors", str(tags // groups), "--profiles", "chilled,frozen", "--interval", "1", "--speed", "1",
            "--duration", str(duration), "--seed", "1"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    stack.procs[f"sim-{gw.gateway_id}"] = proc
    return proc


def _agent_counters(port: int) -> dict[str, float]:
    """The agent's Prometheus counters (name{labels} → value) from its metrics endpoint."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("coldwatch_agent_") and " " in line:
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def agent_burst(frames: int = 100_000, rate: float = 25_000.0, sensors: int = 100) -> list[Result]:
    """A real agent offered a burst of `frames` UDP envelopes at `rate` frames/s (a BLE bridge's backlog, a
    warehouse's tags after a scanner restart): frames lost (offered minus readings accepted into the outbox; the
    kernel's drops are counted by the agent as frames rejected, reason kernel_buffer_full)."""
    with tempfile.TemporaryDirectory(prefix="coldwatch-bench-") as tmp:
        stack = LocalStack(workdir=Path(tmp), gateways=make_gateways([("bench-01", sensors, ["chilled"])]),
                           say=lambda _line: None)
        try:
            stack.start_infra()
            stack.start_agents()
            gw = stack.gateways[0]
            time.sleep(2.0)
            now = int(time.time() * 1000)
            payloads = [pack_datagram(Datagram(
                mac=gw.sensors[i % sensors].mac, rssi_dbm=-70, company_id=RUUVI_COMPANY_ID, ts_ms=now + i // sensors,
                payload=encode_rawv2(RuuviFrame(mac=gw.sensors[i % sensors].mac, temp_c=3.0 + (i % 7) * 0.01,
                                                rh_pct=80.0, battery_mv=3000, seq=(i // sensors) % 65535))))
                for i in range(frames)]
            before = _agent_counters(gw.metrics_port).get("coldwatch_agent_readings_accepted_total", 0.0)
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            t0 = time.perf_counter()
            for start in range(0, frames, 250):
                due = t0 + start / rate
                while (wait := due - time.perf_counter()) > 0:
                    time.sleep(wait)
                for data in payloads[start:start + 250]:
                    sock.sendto(data, ("127.0.0.1", gw.udp_port))
            offered_rate = frames / (time.perf_counter() - t0)
            sock.close()
            accepted, last_change, counters = before, time.monotonic(), {}
            while time.monotonic() - last_change < 3.0:
                time.sleep(0.5)
                counters = _agent_counters(gw.metrics_port)
                now_accepted = counters.get("coldwatch_agent_readings_accepted_total", 0.0)
                if now_accepted != accepted:
                    accepted, last_change = now_accepted, time.monotonic()
            kernel = counters.get('coldwatch_agent_frames_rejected_total{reason="kernel_buffer_full"}', 0.0)
        finally:
            stack.stop()
    lost = frames - (accepted - before)
    print(f"    burst: {frames} frames offered at {offered_rate:,.0f}/s, {accepted - before:,.0f} accepted, "
          f"{kernel:,.0f} dropped by the kernel (socket buffer full)", file=sys.stderr)
    return [Result(f"agent_burst_{frames // 1000}k_lost", lost, "frames", f"frames offered at {offered_rate:,.0f}/s",
                   frames, higher_is_better=False)]


class _DequeHistory:
    """The reference: the agent's per-sensor history before edge_agent/detect/history.py (four deques of Python
    objects, popped from the left by age), kept here to measure against in the same run."""

    def __init__(self) -> None:
        self.columns: tuple[deque[object], ...] = (deque(), deque(), deque(), deque())

    def add(self, r: Reading, keep_ms: int) -> None:
        ts, temp, rh, battery = self.columns
        ts.append(r.ts)
        temp.append(float("nan") if r.temp_c is None else r.temp_c)
        rh.append(float("nan") if r.rh_pct is None else r.rh_pct)
        battery.append(float("nan") if r.battery_mv is None else float(r.battery_mv))
        while ts and r.ts - int(ts[0]) > keep_ms:  # type: ignore[call-overload]
            for column in self.columns:
                column.popleft()


def agent_history_per_tag(tags: int = 32, hours: float = 4.6) -> list[Result]:
    """Bytes the model's detector keeps per tag at 1 Hz once a default model's span (4.5 h) is full (its step ring,
    edge_agent/detect/history.py, and the step still open), measured with tracemalloc over ticks of one reading per
    tag, against the deque-of-objects history of the first wave measured the same way."""
    from types import SimpleNamespace

    from edge_agent.detect.alerts import AlertTracker
    from edge_agent.detect.anomaly import AnomalyDetector
    from models.runtime.features import default_spec

    def with_model() -> int:
        rng = np.random.default_rng(1)
        model = SimpleNamespace(spec=default_spec(), manifest=SimpleNamespace(threshold=1e9, name="m", version="1"),
                                scores=lambda windows: np.zeros(len(windows), dtype=np.float32))
        detector = AnomalyDetector("bench", AlertTracker("bench"), models={"chilled": model})  # type: ignore[dict-item]
        tracemalloc.start()
        for second in range(int(hours * 3600) + 60):
            detector.score([Reading(sensor=f"c2:00:00:00:00:{i:02x}", ts=T0 + second * 1000, profile="chilled",
                                    temp_c=float(rng.normal(3, 1)), rh_pct=80.0, battery_mv=3000)
                            for i in range(tags)])
        size, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return size

    def before() -> int:
        rng = np.random.default_rng(1)
        keep_ms = int(hours * 3_600_000)
        tracemalloc.start()
        histories = [_DequeHistory() for _ in range(tags)]
        for second in range(int(hours * 3600) + 60):
            for i, h in enumerate(histories):
                h.add(Reading(sensor=f"c2:00:00:00:00:{i:02x}", ts=T0 + second * 1000, profile="chilled",
                              temp_c=float(rng.normal(3, 1)), rh_pct=80.0, battery_mv=3000), keep_ms)
        size, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return size

    ours, reference = with_model() / tags, before() / tags
    return [Result("agent_history_bytes_per_tag", ours, "bytes", "deque-of-objects history (first wave)", reference,
                   higher_is_better=False, note=f"1 Hz, a default model (4.5 h span), after {hours:g} h")]


def agent_rules_per_tag(tags: int = 32, hours: float = 5.6) -> list[Result]:
    """Bytes the rules keep per tag at 1 Hz once their spans are full (the rate window's readings, cooling_fading's
    5.5 h of temperatures, the last reading, alert state), measured with tracemalloc over ticks of one reading per
    tag, against the 16 KB a tag that 5,000 tags in 120 MiB would allow (issue 20)."""
    rng = np.random.default_rng(2)
    detector = Detector("bench", DetectConfig())
    tracemalloc.start()
    for second in range(int(hours * 3600)):
        detector.observe_many([Reading(sensor=f"c2:00:00:00:01:{i:02x}", ts=T0 + second * 1000, profile="chilled",
                                       temp_c=round(float(rng.normal(4, 0.5)), 3), rh_pct=80.0, battery_mv=3000)
                               for i in range(tags)])
        detector.tick()
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return [Result("agent_rules_bytes_per_tag", size / tags, "bytes", "16 KB a tag (5,000 tags in 120 MiB)", 16_384,
                   higher_is_better=False, note=f"1 Hz, after {hours:g} h")]


def run() -> list[Result]:
    return (agent_accept_path() + agent_history_per_tag() + agent_rules_per_tag() + agent_tags_at_1hz(200)
            + agent_tags_at_1hz(200, model=False) + agent_tags_at_1hz(5000, seconds=265.0, steady_s=310.0)
            + agent_burst()
            + slice_sim_to_influx())  # ingest: bench/cloud.py
