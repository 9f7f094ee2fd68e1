"""Keep mosquitto's password file in step with the provisioned gateways, then reload the broker (SIGHUP).

Lines for users that are not provisioned gateways (service accounts like `coldwatch.ingest`, gateways
added by hand) are kept as they are; revoked gateways are removed. The ACL needs no change: its
`pattern … cw/v1/%u/#` lines (deploy/services.render_acl) confine every gateway to its own subtree.

On a reload mosquitto checks every connected client against the new file and ends the sessions of accounts
that are gone, so a revocation takes effect at once. Where the API cannot signal the broker (another container),
`watch` runs beside the broker, in its process namespace, and reloads it whenever the file changes.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

WATCH_EVERY_S: Final = 1.0

log = logging.getLogger(__name__)


class BrokerSyncError(RuntimeError):
    """The password file could not be written or the broker not signalled."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerAccounts:
    """Where the broker's password file is, and how to find its pid (a pid file, as systemd writes)."""

    passwd_file: Path
    pid_file: Path | None = None

    def sync(self, accounts: Mapping[str, str], *, revoked: set[str] | frozenset[str] = frozenset(),
             reload: bool = True) -> int:
        """Rewrite the password file with `accounts` (user → `$7$` hash) and reload; returns lines written."""
        kept: list[str] = []
        if self.passwd_file.exists():
            for line in self.passwd_file.read_text().splitlines():
                user = line.split(":", 1)[0]
                if line.strip() and user not in accounts and user not in revoked:
                    kept.append(line)
        lines = kept + [f"{user}:{digest}" for user, digest in sorted(accounts.items())]
        tmp = self.passwd_file.with_name(self.passwd_file.name + ".tmp")
        try:
            tmp.write_text("".join(f"{line}\n" for line in lines))
            tmp.chmod(0o600)
            os.replace(tmp, self.passwd_file)
        except OSError as exc:
            raise BrokerSyncError(f"cannot write {self.passwd_file}: {exc}") from exc
        if reload:
            self.reload()
        log.info("broker accounts written file=%s gateways=%d other=%d", self.passwd_file, len(accounts), len(kept))
        return len(lines)

    def reload(self) -> None:
        """SIGHUP the broker so it re-reads the password file and ACL."""
        if self.pid_file is None:
            log.warning("broker not reloaded: no COLDWATCH_MOSQUITTO_PID_FILE set")
            return
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, signal.SIGHUP)
        except (OSError, ValueError) as exc:
            raise BrokerSyncError(f"cannot reload the broker via {self.pid_file}: {exc}") from exc


def broker_pids(proc: Path = Path("/proc")) -> list[int]:
    """The pids of every process named `mosquitto` this process can see (its own pid namespace)."""
    found = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "mosquitto":
                    found.append(int(entry.name))
            except OSError:
                continue  # it ended while we looked
    return sorted(found)


def _pids(pid_file: Path | None) -> list[int]:
    if pid_file is None:
        return broker_pids()
    try:
        return [int(pid_file.read_text().strip())]
    except (OSError, ValueError):
        return []


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def watch(passwd_file: Path, *, pid_file: Path | None = None, stop: threading.Event | None = None,
          every_s: float = WATCH_EVERY_S) -> int:
    """Reload the broker each time `passwd_file` changes (written in place or replaced), until `stop` is set;
    returns how many reloads were sent. The broker is found by `pid_file`, else by its process name. A reload
    that finds no broker is retried at the next check, so a change made while the broker restarts still lands."""
    stop = stop or threading.Event()
    seen = _stamp(passwd_file)
    pending = True  # once at start: a change made while nothing watched (an upgrade's broker-init) lands too
    reloads = 0
    log.info("broker watch started file=%s every_s=%.1f", passwd_file, every_s)
    while not stop.wait(every_s):
        now = _stamp(passwd_file)
        if now != seen:
            seen, pending = now, True
        if not pending:
            continue
        pids = _pids(pid_file)
        sent = 0
        for pid in pids:
            try:
                os.kill(pid, signal.SIGHUP)
                sent += 1
            except OSError as exc:
                log.warning("broker reload failed pid=%d error=%s (retried at the next check)", pid, exc)
        if sent:
            pending = False
            reloads += 1
            log.info("broker reloaded file=%s pids=%s", passwd_file, ",".join(map(str, pids)))
        else:
            log.warning("broker reload pending: no mosquitto process found (retried at the next check)")
    return reloads
