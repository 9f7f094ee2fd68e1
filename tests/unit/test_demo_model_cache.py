"""The demo's model cache key covers every file a model is made from, sub-packages included."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy import demo_models


def _tree(root: Path) -> None:
    for rel in ("models/__init__.py", "models/runtime/features.py", "models/training/train.py",
                "firmware_sim/scenarios.py"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"# {rel}\n")


@pytest.mark.parametrize("changed", ["models/runtime/features.py", "models/training/train.py",
                                     "firmware_sim/scenarios.py"])
def test_a_change_in_any_training_file_changes_the_cache_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             changed: str) -> None:
    _tree(tmp_path)
    monkeypatch.setattr(demo_models, "ROOT", tmp_path)
    before = demo_models.training_code_tag()
    assert demo_models.training_code_tag() == before
    (tmp_path / changed).write_text("# edited\n")
    assert demo_models.training_code_tag() != before


def test_the_cache_key_covers_the_real_sub_packages() -> None:
    files = {p.relative_to(demo_models.ROOT).as_posix() for folder in demo_models.TRAINING_CODE
             for p in (demo_models.ROOT / folder).rglob("*.py")}
    assert "models/training/train.py" in files and "models/runtime/features.py" in files
