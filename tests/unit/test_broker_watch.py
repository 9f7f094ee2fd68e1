"""`coldwatch broker watch`: a reload at start (a change made while nothing watched) and on every change."""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path

from cloud.broker import watch


def test_the_watcher_reloads_once_at_start_and_after_each_change(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("gw1:hash\n")
    broker = subprocess.Popen(["sleep", "60"])  # stands in for mosquitto: a SIGHUP ends it, so we can see one
    pid_file = tmp_path / "mosquitto.pid"
    pid_file.write_text(f"{broker.pid}\n")
    stop = threading.Event()
    reloads: list[int] = []
    thread = threading.Thread(target=lambda: reloads.append(watch(passwd, pid_file=pid_file, stop=stop,
                                                                  every_s=0.05)))
    thread.start()
    try:
        assert broker.wait(5) == -signal.SIGHUP  # the reload at start, with no change to the file
        second = subprocess.Popen(["sleep", "60"])
        pid_file.write_text(f"{second.pid}\n")
        passwd.write_text("gw1:hash\ngw2:hash\n")  # the API provisions a gateway
        assert second.wait(5) == -signal.SIGHUP
    finally:
        stop.set()
        thread.join(5)
    assert reloads == [2]
