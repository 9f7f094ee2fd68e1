"""Ops commands over the HTTP API (the dashboard's API): `models push`, `rollouts start|status|promote|halt|
rollback`, `training start|status`, and `train-worker`. URL from --api-url / COLDWATCH_API_URL, bearer token
only from COLDWATCH_API_TOKEN (create one with `coldwatch tokens create USER --name NAME`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import msgspec

from cloud.api_client.client import DEFAULT_URL, ApiError, OpsClient
from cloud.api_client.responses import Rollout

EXIT_FAIL: Final = 1
PUSH_SUMMARY: Final = ("stem", "name", "version", "profile", "threshold", "size_bytes", "sha256", "registered_at")
EARLIEST_MS: Final = 946_684_800_000  # 2000-01-01: a smaller number is seconds (or a typo), not epoch ms


def when(text: str) -> int:
    """A time on the command line: ISO 8601 (`2026-01-01`, `2026-01-01T06:00Z`, a naive time is UTC) or epoch
    milliseconds; epoch seconds are refused rather than read as January 1970."""
    if text.strip().lstrip("-").isdigit():
        value = int(text)
        if value < EARLIEST_MS:
            raise argparse.ArgumentTypeError(
                f"{text} is before 2000 as epoch milliseconds (epoch seconds? use {value * 1000} or an ISO time "
                "like 2026-01-01T06:00Z)")
        return value
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither an ISO 8601 time (2026-01-01T06:00Z) nor epoch "
                                         "milliseconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def profile_name(text: str) -> str:
    """An asset profile known to this version (`chiled` is a typo, not a new profile)."""
    from protocol.profiles import PROFILES

    if text not in PROFILES:
        raise argparse.ArgumentTypeError(f"unknown profile {text!r}; choose from {', '.join(sorted(PROFILES))}")
    return text
COMMANDS: Final = ("rollouts", "training", "train-worker")


def _api_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api-url", default=None, help=f"API base URL [env COLDWATCH_API_URL, default {DEFAULT_URL}]")


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise ValueError("parser has no subcommands")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                models: argparse.ArgumentParser | None = None) -> None:
    """`models push` (into the existing `models` command), `rollouts`, `training`, `train-worker`."""
    if models is not None:
        push = _subparsers(models).add_parser("push", help="upload a signed model to the registry (API)")
        push.add_argument("model", type=Path, help="model folder or any of its files (.tflite, .manifest.json, .sig)")
        _api_flag(push)
    rollouts = sub.add_parser("rollouts", help="start and follow model rollouts (API)",
                              description="Canary (shadow) first, then the rest once the canary verdict (alert "
                                          "episodes per sensor-day against the current model's, or the alert budget "
                                          "for a first model) promotes it; halted by the verdict or when a swap "
                                          "fails. Token from COLDWATCH_API_TOKEN.")
    rsub = rollouts.add_subparsers(dest="rollouts_command", required=True, metavar="ACTION")
    start = rsub.add_parser("start", help="roll a registered model out to a group of gateways")
    start.add_argument("model", help="registered model, <name>-<version>")
    start.add_argument("--gateways", help="comma-separated gateway ids (default: all, or --site)")
    start.add_argument("--site", help="every gateway of this site")
    start.add_argument("--canary-fraction", type=float, default=0.2,
                       help="share of canaries (default 0.2; 0: none, every target gets the model active at once)")
    start.add_argument("--canaries", help="comma-separated canary gateway ids (default: chosen by hash)")
    start.add_argument("--probation-s", type=float, default=3600.0,
                       help="reading time each canary scores the candidate before a verdict (default 3600)")
    start.add_argument("--max-alert-ratio", type=float, default=1.0,
                       help="candidate alert episodes per sensor-day ≤ ratio × the current model's, never below the "
                            "alert budget (default 1)")
    start.add_argument("--min-sensor-hours", type=float, default=None,
                       help="evidence before a verdict: sensor-hours of shadow scoring over the canaries "
                            "(default 240)")
    start.add_argument("--alert-budget", type=float, default=None,
                       help="alert episodes per sensor-day a first model may raise (default: its manifest's, else 0.1)")
    status = rsub.add_parser("status", help="one rollout per gateway, or the latest rollouts")
    status.add_argument("rollout", type=int, nargs="?", help="rollout id (default: list)")
    status.add_argument("--json", action="store_true", help="print the JSON")
    for name, text in (("promote", "end the canary phase now"), ("halt", "stop where it is"),
                       ("rollback", "return every target to its previous model")):
        action = rsub.add_parser(name, help=text)
        action.add_argument("rollout", type=int)
        action.add_argument("--reason", help="kept in the audit log")
    for parser in (start, status, *(rsub.choices[n] for n in ("promote", "halt", "rollback"))):
        _api_flag(parser)
    training = sub.add_parser("training", help="queue and follow retraining jobs (API)")
    tsub = training.add_subparsers(dest="training_command", required=True, metavar="ACTION")
    queue = tsub.add_parser("start", help="queue a retrain of one profile over a period of stored readings")
    queue.add_argument("--profile", required=True, type=profile_name, help="asset profile to retrain")
    queue.add_argument("--start", type=when, required=True,
                       help="first reading time: ISO 8601 (2026-01-01T06:00Z; naive = UTC) or epoch ms")
    queue.add_argument("--end", type=when, required=True, help="last reading time (as --start)")
    queue.add_argument("--epochs", type=int, default=8, help="training epochs (default 8)")
    queue.add_argument("--version", help="model version (default: UTC time)")
    show = tsub.add_parser("status", help="a job's state, progress and log")
    show.add_argument("job", type=int)
    for parser in (queue, show):
        _api_flag(parser)
    worker = sub.add_parser("train-worker", help="run retraining jobs (GPU when present); signs with the key in "
                                                 "COLDWATCH_SIGNING_KEY_FILE, registers through the API")
    worker.add_argument("--worker-id", default=f"trainer-{os.uname().nodename}", help="name shown on the jobs")
    worker.add_argument("--once", action="store_true", help="run at most one job, then exit")
    worker.add_argument("--poll-s", type=float, default=5.0, help="seconds between claims when idle")
    worker.add_argument("--work-dir", type=Path, default=Path("var/training"), help="scratch folder")
    worker.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    _api_flag(worker)


def client(args: argparse.Namespace, env: dict[str, str] | None = None) -> OpsClient:
    """An API client from --api-url / COLDWATCH_API_URL and COLDWATCH_API_TOKEN."""
    environ = os.environ if env is None else env
    url = args.api_url or environ.get("COLDWATCH_API_URL", DEFAULT_URL)
    token = environ.get("COLDWATCH_API_TOKEN") or None
    if token is None:
        raise ApiError(0, "COLDWATCH_API_TOKEN is not set (create one: `coldwatch tokens create USER --name NAME`)")
    return OpsClient(url=url, token=token)


def _print(data: object) -> None:
    """`data` (Structs as their JSON objects) as indented JSON with sorted keys."""
    print(json.dumps(msgspec.to_builtins(data), indent=2, sort_keys=True))


def _status_table(rollout: Rollout) -> str:
    lines = [f"rollout {rollout.id}  model {rollout.model_stem}  state {rollout.state}"
             + (f"  ({rollout.reason})" if rollout.reason else ""),
             "  " + "  ".join(f"{k}={v}" for k, v in rollout.counts.items() if v)]
    if rollout.verdict:
        lines.append(f"  verdict: {rollout.verdict}")
    lines.append(f"  {'gateway':<20}{'role':<8}{'state':<10}{'reported':<12}{'model':<12}shadow")
    for t in rollout.targets:
        shadow, text = t.shadow, ""
        if shadow is not None:
            current = shadow.active_episodes
            text = (f"{shadow.state} sensor-hours={shadow.sensor_hours or 0:g} episodes new/current="
                    f"{shadow.shadow_episodes or 0}/{'-' if current is None else current} windows={shadow.windows}")
        lines.append(f"  {t.gateway_id:<20}{t.role:<8}{t.state:<10}{t.reported_result or '-':<12}"
                     f"{t.reported_model_version or '-':<12}{text}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run an ops command; returns the exit status."""
    try:
        api = client(args)
        try:
            return _dispatch(api, args)
        finally:
            api.close()
    except ApiError as exc:
        print(f"coldwatch: error: {exc}", file=sys.stderr)
        return EXIT_FAIL


def _dispatch(api: OpsClient, args: argparse.Namespace) -> int:
    if args.command == "models":
        pushed = api.push_model(args.model)
        _print({k: getattr(pushed, k) for k in PUSH_SUMMARY})  # the manifest stays in `GET /models/{stem}`
    elif args.command == "rollouts":
        action = args.rollouts_command
        if action == "start":
            _print(api.start_rollout(
                model=args.model, gateways=args.gateways.split(",") if args.gateways else None, site=args.site,
                canary_fraction=args.canary_fraction, canaries=args.canaries.split(",") if args.canaries else None,
                probation_s=args.probation_s, max_alert_ratio=args.max_alert_ratio,
                min_sensor_hours=args.min_sensor_hours, alert_budget=args.alert_budget))
        elif action == "status" and args.rollout is None:
            rows = api.rollouts()
            if args.json:
                _print(rows)
            for r in [] if args.json else rows:
                print(f"{r.id:>5}  {r.model_stem:<32}{r.state:<12}"
                      + " ".join(f"{k}={v}" for k, v in r.counts.items() if v))
        elif action == "status":
            data = api.rollout(args.rollout)
            if args.json:
                _print(data)
            else:
                print(_status_table(data))
        else:
            _print(api.rollout_action(args.rollout, action, getattr(args, "reason", None)))
    elif args.command == "training":
        if args.training_command == "start":
            if args.end <= args.start:
                print("coldwatch: error: --end must be after --start", file=sys.stderr)
                return 2
            _print(api.queue_training(profile=args.profile, start=args.start, end=args.end, epochs=args.epochs,
                                      version=args.version))
        else:
            job = msgspec.to_builtins(api.training_job(args.job))
            print(job.pop("log", ""), end="")
            _print(job)
    else:
        from cloud.training.worker import run_worker

        return run_worker(api, worker=args.worker_id, once=args.once, poll_s=args.poll_s, work_dir=args.work_dir,
                          device=args.device)
    return 0
