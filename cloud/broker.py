"""Keep mosquitto's password file in step with the provisioned gateways, then reload the broker (SIGHUP).

Lines for users that are not provisioned gateways (service accounts like `coldwatch.ingest`, gateways
added by hand) are kept as they are; revoked gateways are removed. The ACL needs no change: its
`pattern … cw/v1/%u/#` lines (deploy/services.render_acl) confine every gateway to its own subtree.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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
