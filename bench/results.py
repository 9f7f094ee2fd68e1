"""One benchmark figure and its same-run reference, and how results are written and shown."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Result:
    """A measured value beside a reference measured in the same run; `ratio` = value / reference."""

    name: str
    value: float
    unit: str
    reference: str
    reference_value: float
    higher_is_better: bool
    note: str = ""  # what else a reader needs beside the figure (counts, the reference's other figures)
    ratio: float = field(init=False)

    def __post_init__(self) -> None:
        self.ratio = self.value / self.reference_value if self.reference_value else float("nan")


def write(results: list[Result], path: Path, *, keep_others: bool = False) -> None:
    """Write results as a JSON list of objects. `keep_others`: figures already in the file that this run did not
    measure stay (a partial run with `--only` refreshes its own figures, not the whole file)."""
    rows = [
        {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(r).items()} for r in results
    ]
    if keep_others and path.exists():
        fresh = {row["name"] for row in rows}
        rows = [row for row in json.loads(path.read_text()) if row.get("name") not in fresh] + rows
    path.write_text(json.dumps(rows, indent=2) + "\n")


def table(results: list[Result]) -> str:
    """A plain-text table of the results."""
    lines = [f"{'name':<36} {'value':>14} {'unit':<12} {'ratio':>8}  reference (value)"]
    for r in results:
        better = "↑" if r.higher_is_better else "↓"
        lines.append(
            f"{r.name:<36} {r.value:>14,.1f} {r.unit:<12} {r.ratio:>7.3f}{better}  "
            f"{r.reference} ({r.reference_value:,.1f})"
        )
    return "\n".join(lines)
