"""`coldwatch-agent`: run the gateway daemon, check a config, or decode a captured frame."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from types import FrameType
from typing import Final

import msgspec

from edge_agent import __version__, allocator
from edge_agent.config import ConfigError, load_config
from protocol.datagram import unpack_datagram
from protocol.ruuvi import FrameError, decode_rawv2

GIL_SWITCH_S: Final = 0.0005


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coldwatch-agent",
        description="coldwatch gateway daemon: reads sensor advertisements, queues them durably and "
        "publishes them to the cloud over MQTT.",
    )
    parser.add_argument("--version", action="version", version=f"coldwatch-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the daemon until SIGTERM/SIGINT")
    run.add_argument("--config", required=True, help="TOML config file (see docs/edge-agent.md)")
    check = sub.add_parser("check-config", help="validate a config file and every file it names (password, TLS, "
                           "keys), report every problem at once, and exit (0: valid, 2: not)")
    check.add_argument("--config", required=True)
    decode = sub.add_parser("decode", help="print one frame as JSON: a RAWv2 payload or a UDP envelope, in hex")
    decode.add_argument("hex", help="hex bytes (spaces and colons allowed)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "decode":
        return _decode(args.hex)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"coldwatch-agent: config error: {problem}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(f"{args.config}: ok (gateway {config.gateway_id})")
        return 0
    logging.basicConfig(level=config.log_level, stream=sys.stderr,
                        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    return _run(config)


def _run(config: object) -> int:
    from edge_agent.agent import Agent
    from edge_agent.config import AgentConfig

    assert isinstance(config, AgentConfig)
    # The tick judges a flush interval's readings in one go; with Python's default 5 ms GIL switch interval the
    # input thread, which gives the GIL up on every recv, got it back once per interval and a burst overflowed the
    # socket buffer (a convoy). Switching every 0.5 ms lets the inputs keep draining it (docs/decisions.md).
    sys.setswitchinterval(GIL_SWITCH_S)
    if not allocator.configure():
        logging.getLogger(__name__).info("event=allocator_defaults reason=%r", "not glibc, or mallopt refused a "
                                         "setting: freed tick arrays may stay resident (edge_agent/allocator.py)")
    agent = Agent(config)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    agent.start()
    stop.wait()
    agent.stop()
    return 0


def _decode(text: str) -> int:
    try:
        data = bytes.fromhex(text.replace(":", "").replace(" ", ""))
    except ValueError:
        print(f"coldwatch-agent: error: {text!r} is not hex bytes (spaces and colons allowed)", file=sys.stderr)
        return 2
    try:
        if data[:2] == b"CW":
            envelope = unpack_datagram(data)
            out: dict[str, object] = {"mac": envelope.mac, "rssi_dbm": envelope.rssi_dbm, "ts_ms": envelope.ts_ms,
                                      "company_id": envelope.company_id,
                                      "frame": msgspec.to_builtins(decode_rawv2(envelope.payload))}
        else:
            out = msgspec.to_builtins(decode_rawv2(data[2:] if data[:2] == b"\x99\x04" else data))
    except FrameError as exc:
        print(f"coldwatch-agent: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
