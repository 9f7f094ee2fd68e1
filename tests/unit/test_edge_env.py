"""The gateway's environment (.venv-edge) stays light: no torch, fastapi or sqlmodel; numpy<2; TFLite runs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

FORBIDDEN = {"torch", "fastapi", "sqlmodel", "starlette", "pydantic", "uvicorn", "litert-torch", "httpx"}


def run_edge(edge_python: Path, code: str) -> str:
    return subprocess.run([str(edge_python), "-c", code], check=True, capture_output=True, text=True).stdout


def test_edge_install_pulls_no_cloud_or_training_packages(edge_python: Path) -> None:
    names = json.loads(run_edge(
        edge_python,
        "import importlib.metadata as m, json\n"
        "print(json.dumps([d.metadata['Name'] for d in m.distributions()]))",
    ))
    installed = {n.lower().replace("_", "-") for n in names}
    assert "coldwatch" in installed
    assert "paho-mqtt" in installed
    assert not installed & FORBIDDEN, f"edge venv has {sorted(installed & FORBIDDEN)}"


def test_edge_has_numpy_below_2_and_a_tflite_interpreter(edge_python: Path) -> None:
    out = run_edge(
        edge_python,
        "import numpy\n"
        "try:\n from tflite_runtime.interpreter import Interpreter\n"
        "except ImportError:\n from ai_edge_litert.interpreter import Interpreter\n"
        "print(numpy.__version__, Interpreter.__module__)",
    )
    numpy_version, module = out.split()
    assert int(numpy_version.split(".")[0]) < 2
    assert module.endswith("interpreter")


def test_agent_imports_nothing_from_the_cloud(edge_python: Path) -> None:
    loaded = json.loads(run_edge(
        edge_python,
        "import sys, json, edge_agent.cli, edge_agent.agent; print(json.dumps(sorted(sys.modules)))",
    ))
    assert not [m for m in loaded if m == "cloud" or m.startswith(("cloud.", "torch", "fastapi", "sqlmodel"))]


def test_a_gateway_without_keys_never_loads_openssl(edge_python: Path) -> None:
    """`cryptography` (7.6 MiB resident) is imported where a signature is checked: a rules-only gateway, which has
    no trusted keys, never loads it; checking one does."""
    loaded = json.loads(run_edge(
        edge_python,
        "import sys, json, edge_agent.cli, edge_agent.agent\n"
        "before = 'cryptography' in sys.modules\n"
        "from models.runtime.manifest import ModelRejected, verify_bytes\n"
        "try:\n verify_bytes(b'x', 'AAAA', [bytes(32)])\n"
        "except ModelRejected:\n pass\n"
        "print(json.dumps([before, 'cryptography' in sys.modules]))",
    ))
    assert loaded == [False, True]
