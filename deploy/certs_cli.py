"""`coldwatch certs init|broker|gateway|check`: the fleet's CA, the broker's server certificate and each gateway's
client certificate (deploy/tls.py), in the file layout compose and the gateway installer expect."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Final

from deploy import tls

RENEW_WITHIN_DAYS: Final = 30
EXIT_USAGE: Final = 2


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`coldwatch certs …`."""
    certs = sub.add_parser("certs", help="issue and renew the broker's and gateways' TLS certificates",
                           description="A private CA for the fleet: `init` once, then `broker` and one `gateway` per "
                                       "gateway; run `broker`/`gateway` again to renew (a new key each time) and "
                                       "`check` to see what expires. Files: DIR/ca.crt, DIR/ca.key (keep it off the "
                                       "broker host), DIR/NAME.crt, DIR/NAME.key.")
    actions = certs.add_subparsers(dest="certs_command", required=True, metavar="ACTION")
    init = actions.add_parser("init", help="create the fleet CA (refused if DIR already holds one)")
    broker = actions.add_parser("broker", help="issue or renew the broker's server certificate (broker.crt/.key)")
    broker.add_argument("--host", action="append", required=True,
                        help="a name or address gateways connect to (repeatable)")
    gateway = actions.add_parser("gateway", help="issue or renew a gateway's client certificate (ID.crt/.key)")
    gateway.add_argument("gateway_id", help="the gateway id (its MQTT user name)")
    check = actions.add_parser("check", help="every certificate in DIR with its expiry; exit 1 if one is due")
    check.add_argument("--within", type=int, default=RENEW_WITHIN_DAYS,
                       help=f"due when it expires within this many days (default {RENEW_WITHIN_DAYS})")
    for action in (init, broker, gateway, check):
        action.add_argument("--dir", type=Path, default=Path("tls"), help="the CA folder (default ./tls)")
    for action in (init, broker, gateway):
        action.add_argument("--days", type=int, default=3650 if action is init else 365,
                            help="validity in days (default: 3650 for the CA, 365 otherwise)")


def run(args: argparse.Namespace) -> int:
    """Run one `certs` action; stdout: JSON naming the files written (or the expiries)."""
    try:
        if args.certs_command != "check" and not 1 <= args.days <= 36_500:
            raise ValueError(f"--days: {args.days} is not between 1 and 36500")
        if args.certs_command == "init":
            files = tls.init_ca(args.dir, days=args.days)
            print(json.dumps({"ca": str(files.ca), "ca_key": str(files.key)}))
        elif args.certs_command == "broker":
            files = tls.issue(args.dir, "broker", server_hosts=tuple(args.host), days=args.days)
            print(json.dumps({"ca": str(files.ca), "cert": str(files.cert), "key": str(files.key)}))
        elif args.certs_command == "gateway":
            files = tls.issue(args.dir, args.gateway_id, client=True, days=args.days)
            print(json.dumps({"ca": str(files.ca), "cert": str(files.cert), "key": str(files.key)}))
        else:
            now = dt.datetime.now(dt.UTC)
            rows = [{"file": name, "expires": when.isoformat(timespec="seconds"), "days_left": (when - now).days}
                    for name, when in tls.expiries(args.dir)]
            print(json.dumps(rows, indent=2))
            due = [r["file"] for r in rows if int(str(r["days_left"])) < args.within]
            if due:
                print(f"coldwatch: renew within {args.within} days: {', '.join(map(str, due))}", file=sys.stderr)
                return 1
    except (OSError, ValueError) as exc:
        print(f"coldwatch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0
