"""The README's folder table matches the tree: every path it names exists, and every package and sub-package of
ours is named in it (a move that forgets the README fails here)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("protocol", "firmware_sim", "edge_agent", "cloud", "models", "deploy")


def _rows() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| folder | what | runs where |"):]
    rows = {}
    for line in table.splitlines()[2:]:
        if not line.startswith("| `"):
            break
        folder, what = re.match(r"\| `([^`]+)` \| (.*?) \|[^|]*\|$", line).groups()  # type: ignore[union-attr]
        rows[folder] = what
    return rows


def test_every_folder_and_file_the_table_names_exists() -> None:
    rows = _rows()
    assert len(rows) >= 8
    for folder, what in rows.items():
        assert (ROOT / folder).is_dir(), folder
        for name in re.findall(r"`([\w.-]+/?)`", what):
            if name.endswith("/") or name.endswith((".py", ".sh")):
                assert (ROOT / folder / name).exists(), f"{folder}{name} (README folder table)"


def test_every_package_and_sub_package_is_in_the_table() -> None:
    rows = _rows()
    text = " ".join(f"{folder} {what}" for folder, what in rows.items())
    for package in PACKAGES:
        assert any(folder.split("/")[0] == package for folder in rows), package
        for init in sorted((ROOT / package).glob("*/__init__.py")):
            sub = init.parent.relative_to(ROOT).as_posix()
            if sub.endswith("migrations"):
                continue
            assert f"{sub}/" in rows or f"`{init.parent.name}/`" in rows.get(f"{package}/", text), sub
    for tests_dir in sorted(p for p in (ROOT / "tests").iterdir() if p.is_dir() and not p.name.startswith("_")):
        assert f"tests/{tests_dir.name}" in rows.get("tests/", ""), tests_dir
