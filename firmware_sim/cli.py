"""`coldwatch-sim`: simulate Ruuvi tags in cold spaces, send their frames to gateways, export labelled datasets.

Without a subcommand (`coldwatch-sim --target HOST:PORT ...`) it runs live mode; subcommands:
list-scenarios, run, export, plot, fleet.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from firmware_sim.emitter import EmitStats, GatewayTarget, run
from firmware_sim.export import FORMATS, labels_csv, labels_json, write_dataset
from firmware_sim.fleet import gateway_sensors
from firmware_sim.scenarios import SCENARIOS, generate
from protocol.profiles import PROFILES

COMMANDS = ("list-scenarios", "run", "export", "plot", "fleet")
EPILOG = ("subcommands: list-scenarios | run SCENARIO --gateway HOST:PORT | export SCENARIO --out DIR | "
          "plot SCENARIO --out PNG | fleet --gateways N --sensors M (see `coldwatch-sim SUBCOMMAND --help`)")


def _target(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def _scenario(name: str) -> str:
    if name not in SCENARIOS:
        raise argparse.ArgumentTypeError(f"unknown scenario {name!r}; see `coldwatch-sim list-scenarios`")
    return name


def build_parser() -> argparse.ArgumentParser:
    """The live-mode parser (no subcommand)."""
    parser = argparse.ArgumentParser(
        prog="coldwatch-sim",
        description="Simulate Ruuvi RAWv2 tags in cold spaces and send their advertisements as UDP "
        "datagrams to coldwatch-agent inputs. Prints a JSON summary (frames sent) on exit.",
        epilog=EPILOG,
    )
    parser.add_argument("--target", "--gateway", dest="target", type=_target, action="append", required=True,
                        metavar="HOST:PORT",
                        help="a gateway's UDP input; repeat for several gateways (gateway index = order)")
    parser.add_argument("--sensors", type=int, default=8, help="sensors per gateway (default 8)")
    parser.add_argument("--profiles", default=None,
                        help=f"comma-separated profiles assigned round-robin ({', '.join(PROFILES)}); default all "
                        "four, or the scenario's profile with --scenario")
    _add_pacing(parser, interval=1.0, speed=1.0)
    parser.add_argument("--duration", type=float, default=None,
                        help="wall-clock seconds to run (default: until Ctrl-C)")
    parser.add_argument("--ticks", type=int, default=None, help="stop after this many readings per sensor")
    parser.add_argument("--seed", type=int, default=1, help="random seed (runs are reproducible)")
    parser.add_argument("--first-gateway-index", type=int, default=0,
                        help="index of the first target, used in the sensors' MACs (default 0)")
    parser.add_argument("--scenario", type=_scenario, default=None,
                        help="run this scenario on every gateway's sensors (its profile; the first sensor is hit)")
    parser.add_argument("--labels", type=Path, default=None, metavar="PATH",
                        help="write the ground-truth labels here on exit (.json, else CSV)")
    parser.add_argument("--radio-realism", action="store_true",
                        help="lose frames near the edge of range, duplicate some, jitter receive times "
                        "(default: every frame delivered once, exactly --interval apart)")
    parser.add_argument("--local-start-hour", type=_hour, default=None, metavar="H",
                        help="the sites' local time when the simulated run starts (0-24, e.g. 6 for a day from "
                        "06:00); the air's day/night cycle follows local time, so a scripted day plays the same "
                        "whatever the wall-clock hour (default: local time is UTC)")
    return parser


def _hour(text: str) -> float:
    try:
        hour = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an hour 0-24, got {text!r}") from None
    if not 0.0 <= hour <= 24.0:
        raise argparse.ArgumentTypeError(f"expected an hour 0-24, got {text!r}")
    return hour


def utc_offset_for(start_ms: int, local_start_hour: float | None) -> float:
    """Hours the sites' local time is ahead of UTC so that `start_ms` falls at `local_start_hour` (0 if None)."""
    if local_start_hour is None:
        return 0.0
    return local_start_hour - (start_ms / 3_600_000.0) % 24.0


def _add_pacing(parser: argparse.ArgumentParser, *, interval: float, speed: float) -> None:
    parser.add_argument("--interval", "--period", dest="interval", type=float, default=interval,
                        help=f"simulated seconds between readings (default {interval:g})")
    parser.add_argument("--speed", type=float, default=speed,
                        help=f"simulated seconds per wall-clock second (default {speed:g})")


def _dataset_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", type=_scenario, help="scenario name (see list-scenarios)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (same seed, same bytes; default 1)")
    parser.add_argument("--days", type=float, default=1.0, help="simulated days (default 1)")
    parser.add_argument("--period", "--interval", dest="period", type=float, default=60.0,
                        help="seconds between readings (default 60)")


def build_subcommand_parser() -> argparse.ArgumentParser:
    """The parser for the subcommands."""
    parser = argparse.ArgumentParser(prog="coldwatch-sim", description="coldwatch simulator subcommands.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list-scenarios", help="list the scenarios, their profile and what happens")
    run_p = sub.add_parser("run", help="send a scenario live to gateways over UDP")
    run_p.add_argument("scenario", type=_scenario, help="scenario name (see list-scenarios)")
    run_p.add_argument("--gateway", "--target", dest="gateway", type=_target, action="append", required=True,
                       metavar="HOST:PORT",
                       help="a gateway's UDP input; repeat for several (each gets the scenario)")
    run_p.add_argument("--sensors", type=int, default=4, help="sensors per gateway (default 4)")
    _add_pacing(run_p, interval=60.0, speed=60.0)
    run_p.add_argument("--days", type=float, default=1.0, help="simulated days the scenario lasts (default 1)")
    run_p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    run_p.add_argument("--first-gateway-index", type=int, default=0, help="index used in the MACs (default 0)")
    run_p.add_argument("--labels", type=Path, default=None, metavar="PATH", help="write labels here on exit")
    run_p.add_argument("--radio-realism", action="store_true", help="frame loss, duplicates, receive jitter")
    export_p = sub.add_parser("export", help="write a scenario's readings and labels to files")
    _dataset_options(export_p)
    export_p.add_argument("--out", type=Path, required=True, help="output directory")
    export_p.add_argument("--format", default="csv,parquet", help=f"comma-separated: {', '.join(FORMATS)}")
    plot_p = sub.add_parser("plot", help="write a PNG of a scenario with its labels shaded")
    _dataset_options(plot_p)
    plot_p.add_argument("--out", type=Path, default=None, help="PNG path (default SCENARIO.png)")
    fleet_p = sub.add_parser("fleet", help="generate a large fleet's frames (load tests); optionally send them")
    fleet_p.add_argument("--gateways", type=int, default=200, help="gateways (default 200)")
    fleet_p.add_argument("--sensors", type=int, default=25, help="sensors per gateway (default 25)")
    fleet_p.add_argument("--ticks", type=int, default=60, help="readings per sensor (default 60)")
    fleet_p.add_argument("--interval", type=float, default=60.0, help="simulated seconds between readings")
    fleet_p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    fleet_p.add_argument("--target", type=_target, action="append", default=[], metavar="HOST:PORT",
                         help="send every datagram as fast as possible; gateway g goes to target g mod count")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `coldwatch-sim`."""
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="ts=%(asctime)s level=%(levelname)s %(message)s")
    if argv and argv[0] in COMMANDS:
        args = build_subcommand_parser().parse_args(argv)
        handler = {"list-scenarios": _list, "run": _run_scenario, "export": _export, "plot": _plot,
                   "fleet": _fleet}[args.command]
        return handler(args)
    return _live(build_parser().parse_args(argv))


def _list(_args: argparse.Namespace) -> int:
    width = max(len(n) for n in SCENARIOS)
    for name, s in SCENARIOS.items():
        tag = "benign" if s.kind in ("defrost", "door_short", "setpoint_change", "precool", "normal") else "incident"
        print(f"{name:<{width}}  {s.profile:<10}  {tag:<8}  {s.description}")
    return 0


def _export(args: argparse.Namespace) -> int:
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    try:
        dataset = generate(args.scenario, args.seed, days=args.days, sample_period_s=args.period)
        paths = write_dataset(dataset, args.out, f"{args.scenario}-seed{args.seed}", formats)
    except ValueError as exc:
        print(f"coldwatch-sim: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"rows": len(dataset), "labels": len(dataset.labels), "files": [str(p) for p in paths]}))
    return 0


def _plot(args: argparse.Namespace) -> int:
    from firmware_sim.plot import plot_dataset  # matplotlib only when plotting

    dataset = generate(args.scenario, args.seed, days=args.days, sample_period_s=args.period)
    path = plot_dataset(dataset, args.out or Path(f"{args.scenario}.png"),
                        title=f"{args.scenario} (seed {args.seed}): {SCENARIOS[args.scenario].description}")
    print(json.dumps({"png": str(path), "labels": len(dataset.labels)}))
    return 0


def _fleet(args: argparse.Namespace) -> int:
    import socket

    from firmware_sim.loadgen import fleet_chunks

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if args.target else None
    t0 = time.perf_counter()
    readings = sent = 0
    try:
        for chunk in fleet_chunks(args.gateways, args.sensors, ticks=args.ticks, interval_s=args.interval,
                                  seed=args.seed):
            readings += chunk.readings
            if sock is not None:
                for tick_row, heard_row in zip(chunk.datagrams, chunk.heard, strict=True):
                    for s in heard_row.nonzero()[0]:
                        host_port = args.target[int(chunk.gateway_of_sensor[s]) % len(args.target)]
                        sock.sendto(tick_row[s].tobytes(), host_port)
                        sent += 1
    except ValueError as exc:
        print(f"coldwatch-sim: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if sock is not None:
            sock.close()
    elapsed = time.perf_counter() - t0
    print(json.dumps({"readings": readings, "sent": sent, "seconds": round(elapsed, 3),
                      "readings_per_s": round(readings / elapsed)}))
    return 0


def _install_stop(duration: float | None) -> threading.Event:
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if duration is not None:
        timer = threading.Timer(duration, stop.set)
        timer.daemon = True
        timer.start()
    return stop


def _summary(stats: EmitStats, labels_path: Path | None) -> None:
    if labels_path is not None:
        labels_path.parent.mkdir(parents=True, exist_ok=True)
        text = labels_json(stats.labels) if labels_path.suffix == ".json" else labels_csv(stats.labels)
        labels_path.write_text(text)
    print(json.dumps({"sent": stats.sent, "per_gateway": stats.per_gateway,
                      "first_ts_ms": stats.first_ts_ms, "last_ts_ms": stats.last_ts_ms}), flush=True)


def _live(args: argparse.Namespace) -> int:
    if args.sensors < 1 or args.sensors > 256 or args.interval <= 0 or args.speed <= 0:
        print("coldwatch-sim: error: --sensors must be 1..256, --interval and --speed positive", file=sys.stderr)
        return 2
    try:
        default = SCENARIOS[args.scenario].profile if args.scenario else ",".join(PROFILES)
        profiles = [p.strip() for p in (args.profiles or default).split(",") if p.strip()]
        targets = [
            GatewayTarget(host, port, gateway_sensors(args.first_gateway_index + i, args.sensors, profiles))
            for i, (host, port) in enumerate(args.target)
        ]
    except ValueError as exc:
        print(f"coldwatch-sim: error: {exc}", file=sys.stderr)
        return 2
    stop = _install_stop(args.duration)
    now_ms = int(time.time() * 1000)
    # Accelerated runs of known length end at "now", so no reading lies in the future.
    span_ms = int(args.duration * args.speed * 1000) if args.duration and args.speed > 1 else 0
    horizon = args.ticks * args.interval if args.ticks else (args.duration * args.speed if args.duration else None)
    start_ms = now_ms - span_ms
    stats = run(targets, interval_s=args.interval, speed=args.speed, start_ms=start_ms, seed=args.seed,
                stop=stop, max_ticks=args.ticks, horizon_s=horizon, scenario=args.scenario,
                radio_realism=args.radio_realism, want_labels=args.labels is not None,
                utc_offset_h=utc_offset_for(start_ms, args.local_start_hour))
    stop.set()
    _summary(stats, args.labels)
    return 0


def _run_scenario(args: argparse.Namespace) -> int:
    if args.sensors < 1 or args.sensors > 256 or args.interval <= 0 or args.speed <= 0 or args.days <= 0:
        print("coldwatch-sim: error: --sensors must be 1..256; --interval, --speed, --days positive", file=sys.stderr)
        return 2
    profile = SCENARIOS[args.scenario].profile
    targets = [GatewayTarget(host, port, gateway_sensors(args.first_gateway_index + i, args.sensors, [profile]))
               for i, (host, port) in enumerate(args.gateway)]
    ticks = max(1, int(args.days * 86400 / args.interval))
    stop = _install_stop(None)
    start_ms = int(time.time() * 1000) - int(ticks * args.interval * 1000 if args.speed > 1 else 0)
    stats = run(targets, interval_s=args.interval, speed=args.speed, start_ms=start_ms, seed=args.seed, stop=stop,
                max_ticks=ticks, horizon_s=ticks * args.interval, scenario=args.scenario,
                radio_realism=args.radio_realism, want_labels=args.labels is not None)
    _summary(stats, args.labels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
