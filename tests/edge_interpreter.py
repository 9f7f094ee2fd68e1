"""A check script running in the gateway's interpreter (.venv-edge, numpy 1.x), fed one JSON case a line and
answering one JSON verdict a line: how tests hold the edge's numpy code to what it gives on numpy 2."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


class EdgeCheck:
    """One running check script; `verdict(case)` sends a case and returns the script's answer."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    def verdict(self, case: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(case) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the edge interpreter's check died"
        answer: dict[str, Any] = json.loads(line)
        assert str(answer["numpy"]).startswith("1."), answer
        return answer


@contextmanager
def edge_check(edge_python: Path, script: str) -> Iterator[EdgeCheck]:
    """`script` running in the gateway's interpreter from the repository root, for as long as the block runs."""
    proc = subprocess.Popen([str(edge_python), "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=ROOT)
    try:
        yield EdgeCheck(proc)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(30)
