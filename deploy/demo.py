"""`make demo`: the system on loopback — broker, influxd, two ingest workers, API, three gateways' agents,
and the simulator playing one simulated day of incident scenarios in accelerated time.

Before the gateways start, the first model of each profile is trained (or taken from var/demo-models/), signed
with a demo fleet key, registered and rolled out through a canary: the gateway scores it in shadow over the day's
first hours and the rollout promotes it if its alert episodes stay within the alert budget; from then on the
gateways run it beside the rules. During the day one profile is retrained from the readings stored so far and
rolled out as a canary judged against the current model (deploy/demo_models.py).

A shipment per site travels with the site's tags; at the end of the run the reefer's is delivered and the path of
its signed record printed (deploy/demo_shipments.py). After a headless day, the reefer's gateway loses power (its
agent is frozen, then rebooted): the summary shows it going offline, the cloud's `gateway_silent` alert, and both
ending when power returns (deploy/demo_power.py).

With --duration N it runs headless for N seconds (one simulated day in N seconds; the power cut adds about two
minutes), prints a summary and exits non-zero if a reading sent was not stored, an incident in the scenarios'
ground truth was missed, a rollout failed, the power cut went unseen or the
shipment record was not kept signed. Without it, the day plays over 10 minutes
and the stack stays up until Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from deploy import demo_power
from deploy.demo_models import FleetOps, api_env, first_models, fleet_key, profile_of, timed
from deploy.demo_shipments import DemoShipments
from deploy.scorecard import AlertWatcher, Scorecard, score
from deploy.stack import CLOUD_BIN, INGEST_USER, ROOT, LocalStack, make_gateways

# Three sites, eight tags each; the first tag of each site is the one the scenario hits.
LAYOUT = [
    ("reefer-01", 8, ["frozen"]),
    ("shipper-01", 8, ["pharma_2_8"]),
    ("coldroom-01", 8, ["chilled"]),
]
DELIVERED_AT = "reefer-01"  # its shipment is delivered at the end of the run (its record shows the excursion)
SCENARIOS = {"reefer-01": "compressor_failure", "shipper-01": "power_loss", "coldroom-01": "door_left_open"}
POWER_CUT_AT = "reefer-01"  # after the day: the gateway itself loses power (the scenario's power_loss is the room's)
SIM_DAY_S = 86_400.0
# The simulated day is a working day from 06:00 at the sites, whatever the wall-clock hour of the run: the air
# outside a cold room follows the time of day, and a door left open at night in a cool warehouse can stay inside
# the room's band, so a day that followed the UTC hour of the run played a different demo each hour
# (docs/decisions.md, "The demo's day starts at 06:00 site time").
SITE_DAY_START_HOUR = 6.0
SAMPLE_S = 60.0  # one reading per tag per simulated minute


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument("--duration", type=float, default=0, help="run headless for N seconds (0: until Ctrl-C)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "demo", help="where data and logs go")
    args = parser.parse_args(argv)
    shutil.rmtree(args.workdir, ignore_errors=True)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stack = LocalStack(workdir=args.workdir, gateways=make_gateways(LAYOUT))
    for gw in stack.gateways:
        gw.keepalive_s = demo_power.KEEPALIVE_S
    logins = {"admin": secrets.token_urlsafe(9), "staff": secrets.token_urlsafe(9)}  # fresh for every run
    os.environ["COLDWATCH_ADMIN_PASSWORD"] = logins["admin"]  # the API creates user admin on first start
    t0 = time.monotonic()
    fleet: FleetOps | None = None
    try:
        key = fleet_key()
        models = first_models(list(dict.fromkeys(profile_of(gw) for gw in stack.gateways)), key,
                              args.workdir / "logs")
        stack.start_infra()
        stack.start_ingest(workers=2)
        stack.start_api(env=api_env(stack, key) | demo_power.api_settings())
        subprocess.run([str(CLOUD_BIN / "coldwatch"), "users", "create", "staff", "--role", "staff"],
                       env=stack.cloud_env(COLDWATCH_USER_PASSWORD=logins["staff"]), check=True, capture_output=True,
                       timeout=60)
        fleet = FleetOps(stack, key, logins["admin"])
        timed(f"provisioning {len(stack.gateways)} gateways through the API (MQTT accounts, artifact tokens)",
              fleet.provision)
        stems: list[str] = []
        timed(f"registering {len(models)} signed models", lambda: stems.extend(fleet.register(models)))
        stack.start_agents()
        timed(f"rolling out {', '.join(stems)} (a rollout per profile; its canary scores the model in shadow "
              "until the verdict)", lambda: fleet.roll_out_first(stems))
        if fleet.problems:
            raise RuntimeError("; ".join(fleet.problems))
        assert stack.mosquitto is not None
        watcher = AlertWatcher("127.0.0.1", stack.mosquitto.port, INGEST_USER, stack.ingest_password)
        watcher.start()
        play_s = args.duration or 600.0  # one simulated day over the run (or over 10 minutes)
        labels = {gw.gateway_id: args.workdir / f"labels-{gw.gateway_id}.json" for gw in stack.gateways}
        sim_start_ms = int(time.time() * 1000) - int(SIM_DAY_S * 1000)  # the simulated day ends at the run's end
        sims = [stack.start_sim_for(gw, interval=SAMPLE_S, speed=SIM_DAY_S / play_s, duration=play_s,
                                    scenario=SCENARIOS[gw.gateway_id], labels=labels[gw.gateway_id],
                                    local_start_hour=SITE_DAY_START_HOUR)
                for gw in stack.gateways]
        fleet.retrain_later(sim_start_ms, play_s, stop)
        shipments = DemoShipments(stack, fleet.token)
        started = shipments.start(sim_start_ms)
        print(f"==> running ({time.monotonic() - t0:.1f} s to start)")
        print(f"    dashboard:     {stack.api_url}/   logins: " + ", ".join(f"{u} / {p}" for u, p in logins.items()))
        print(f"    API docs:      {stack.api_url}/docs")
        first = stack.gateways[0].sensors[0].mac
        print(f"    readings:      {stack.api_url}/api/v1/sensors/{first}/readings   (log in first, or send a "
              "bearer token from POST /api/v1/auth/login)")
        print(f"    metrics:       {stack.api_url}/metrics")
        assert stack.mosquitto is not None and stack.influxd is not None
        print(f"    mosquitto:     127.0.0.1:{stack.mosquitto.port}   influxd: {stack.influxd.url} (db coldwatch)")
        print(f"    logs:          {args.workdir / 'logs'}")
        print(f"    shipments:     {stack.api_url}/ui/shipments   ({'; '.join(started)})")
        print(f"    site boards:   {stack.api_url}/ui/sites")
        print("    scenarios:     " + ", ".join(f"{g} → {sc}" for g, sc in SCENARIOS.items())
              + f" (one simulated day in {play_s:.0f} s)")
        if args.duration:
            print(f"    headless for {args.duration:.0f} s ...")
            stop.wait(args.duration)
        else:
            print("    Ctrl-C to stop")
            stop.wait()
        for sim in sims:
            if sim.poll() is None:
                sim.send_signal(signal.SIGTERM)
        summaries = [stack.sim_summary(sim, timeout=30) for sim in sims]
        sent = sum(int(str(s["sent"])) for s in summaries)
        starts = [int(str(s["first_ts_ms"])) for s in summaries if s["first_ts_ms"] is not None]
        ends = [int(str(s["last_ts_ms"])) for s in summaries if s["last_ts_ms"] is not None]
        print("==> waiting for the pipeline to drain ...")
        stored = stack.wait_stored(sent, min(starts), max(ends), timeout=60) if starts else {}
        alerts = {gw.gateway_id: stack.agent_alerts_opened(gw) for gw in stack.gateways}
        time.sleep(2)  # the last alert events are on their way through the broker
        card = score(list(labels.values()), watcher.stop())
        code = report(sent, stored, summaries, alerts, card)
        print(f"\n==> delivering the shipment of {DELIVERED_AT} ...")
        record_ok, lines = shipments.deliver(DELIVERED_AT)
        print("\n".join(f"    {line}" for line in lines))
        print("  OK: the record was kept, signed, and verifies" if record_ok
              else "  FAIL: the record is missing or its signature does not verify")
        cut_ok = True
        if args.duration:  # headless; an interactive run ends at Ctrl-C
            print(f"\n==> cutting the power of {POWER_CUT_AT}'s gateway ...")
            cut = demo_power.cut_power(stack, next(g for g in stack.gateways if g.gateway_id == POWER_CUT_AT),
                                       {"Authorization": f"Bearer {fleet.token}"})
            print("\n".join(cut.lines()))
            cut_ok = cut.ok
            print(f"  {'OK: the power cut was seen and ended' if cut.ok else 'FAIL: the power cut went unseen'}")
        return code if fleet.report() and cut_ok and record_ok else 1
    except Exception as exc:  # the demo reports any failure, then cleans up
        print(f"demo failed: {exc}", file=sys.stderr)
        print(f"logs: {args.workdir / 'logs'}", file=sys.stderr)
        return 1
    finally:
        print("==> stopping")
        if fleet is not None:
            fleet.close()
        stack.stop()


def report(sent: int, stored: dict[str, int], summaries: list[dict[str, object]],
           alerts: dict[str, dict[str, int]], card: Scorecard) -> int:
    """Print the run's summary; 0 when every reading sent is stored and every incident detected."""
    total = sum(stored.values())
    print("\n  gateway        sent    stored")
    for (gid, count), summary in zip(stored.items(), summaries, strict=True):
        print(f"  {gid:<12} {summary['sent']!s:>6} {count:>9}")
    print(f"  {'total':<12} {sent:>6} {total:>9}")
    opened = sum(sum(kinds.values()) for kinds in alerts.values())
    print(f"  alerts opened at the edge: {opened}")
    for gid, kinds in alerts.items():
        if kinds:
            print(f"    {gid:<12} " + ", ".join(f"{k}×{n}" for k, n in sorted(kinds.items())))
    by = {src: sum(src in found for found in card.sources.values()) for src in ("rule", "model")}
    print(f"  incidents in the scenarios' ground truth: {len(card.expected)}, detected {len(card.detected)} "
          f"(by the rules {by['rule']}, by the model {by['model']}), missed {len(card.missed)}")
    for lab in card.missed:
        print(f"    missed: {lab['kind']} on {lab['sensor']}")
    false = card.false_by_source()
    print(f"  alerts matching no incident: {len(false['rule'])} from the rules, {len(false['model'])} from the model")
    for e in card.false_alerts:
        during = card.during(e)
        print(f"    not an incident ({e.source}): {e.kind} on {e.sensor} ({e.reason})"
              + (f" — during a labelled benign {during}" if during else ""))
    lost_ok = total == sent
    print(f"\n  {'OK: every reading sent was stored' if lost_ok else f'FAIL: {sent - total} readings missing'}")
    print(f"  {'OK: every incident was detected' if not card.missed else 'FAIL: incidents missed'}")
    return 0 if lost_ok and not card.missed else 1


if __name__ == "__main__":
    sys.exit(main())
