"""Every command line of the project: each `--help` works, and wrong invocations end in one clear error line and a
non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cloud.cli import main as cloud_cli
from edge_agent import cli as agent_cli
from firmware_sim import cli as sim_cli

Main = Callable[[list[str]], int]


def _subcommand_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _subcommand_paths(child, (*prefix, name))


HELP_CASES: list[tuple[str, Main, tuple[str, ...]]] = [
    *(("coldwatch", cloud_cli.main, path) for path in _subcommand_paths(cloud_cli.build_parser())),
    *(("coldwatch-agent", agent_cli.main, path) for path in _subcommand_paths(agent_cli.build_parser())),
    ("coldwatch-sim", sim_cli.main, ()),
    *(("coldwatch-sim", sim_cli.main, path)
      for path in _subcommand_paths(sim_cli.build_subcommand_parser()) if path),
]


def _run(main: Main, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own exits (help: 0, usage errors: 2)
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("program", "main", "path"), HELP_CASES,
                         ids=[" ".join((p, *path)) for p, _, path in HELP_CASES])
def test_every_command_has_help(program: str, main: Main, path: tuple[str, ...],
                                capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(main, [*path, "--help"], capsys)
    assert code == 0 and "usage:" in out and len(out.splitlines()) > 2


WRONG: list[tuple[str, Main, list[str]]] = [
    ("coldwatch", cloud_cli.main, []),
    ("coldwatch", cloud_cli.main, ["no-such-command"]),
    ("coldwatch", cloud_cli.main, ["serve", "--port", "99999"]),
    ("coldwatch", cloud_cli.main, ["ingest"]),  # no MQTT password in the environment
    ("coldwatch", cloud_cli.main, ["users", "list"]),  # no database there
    ("coldwatch", cloud_cli.main, ["users", "create", "someone", "--role", "emperor"]),
    ("coldwatch", cloud_cli.main, ["tokens", "list"]),
    ("coldwatch", cloud_cli.main, ["tokens", "revoke", "not-a-number"]),
    ("coldwatch", cloud_cli.main, ["tokens", "create", "admin"]),  # --name missing
    ("coldwatch", cloud_cli.main, ["training", "start", "--profile", "chiled", "--start", "2026-01-01",
                                   "--end", "2026-01-02"]),
    ("coldwatch", cloud_cli.main, ["training", "start", "--profile", "chilled", "--start", "1761170400",
                                   "--end", "2026-01-02"]),
    ("coldwatch", cloud_cli.main, ["training", "start", "--profile", "chilled", "--start", "yesterday",
                                   "--end", "2026-01-02"]),
    ("coldwatch", cloud_cli.main, ["rollouts", "status"]),  # no token
    ("coldwatch", cloud_cli.main, ["models", "evaluate", "--scenario", "no_such"]),
    ("coldwatch", cloud_cli.main, ["models", "score", "--model", "/nonexistent", "--csv", "/nonexistent.csv",
                                   "--out", "/tmp/never.csv"]),
    ("coldwatch-agent", agent_cli.main, []),
    ("coldwatch-agent", agent_cli.main, ["check-config", "--config", "/nonexistent/agent.toml"]),
    ("coldwatch-agent", agent_cli.main, ["run", "--config", "/nonexistent/agent.toml"]),
    ("coldwatch-agent", agent_cli.main, ["decode", "zz"]),
    ("coldwatch-sim", sim_cli.main, ["--target", "nowhere"]),
    ("coldwatch-sim", sim_cli.main, ["--target", "127.0.0.1:9", "--local-start-hour", "25"]),
    ("coldwatch-sim", sim_cli.main, ["run", "no_such_scenario", "--gateway", "127.0.0.1:9"]),
]


@pytest.mark.parametrize(("program", "main", "argv"), WRONG, ids=[" ".join((p, *a)) for p, _, a in WRONG])
def test_a_wrong_invocation_ends_in_a_clear_error_and_a_non_zero_exit(
        program: str, main: Main, argv: list[str], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("COLDWATCH_MQTT_PASSWORD", "COLDWATCH_API_TOKEN", "COLDWATCH_USER_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLDWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'none' / 'coldwatch.db'}")
    code, out, err = _run(main, argv, capsys)
    assert code != 0
    assert "Traceback" not in err and "Traceback" not in out
    last = err.strip().splitlines()[-1]
    assert "error" in last, last
    assert not (tmp_path / "none").exists()  # a failed command leaves nothing behind


def test_the_cli_and_the_api_cap_token_lifetimes_the_same() -> None:
    from cloud.api.routes.auth import MAX_TOKEN_DAYS as API_MAX
    from cloud.cli.users import MAX_TOKEN_DAYS as CLI_MAX

    assert CLI_MAX == API_MAX


def test_the_simulator_takes_one_name_for_one_thing_in_every_mode() -> None:
    run = sim_cli.build_subcommand_parser().parse_args(["run", "normal_chilled", "--target", "127.0.0.1:9",
                                                        "--period", "30"])
    assert run.gateway == [("127.0.0.1", 9)] and run.interval == 30.0
    live = sim_cli.build_parser().parse_args(["--gateway", "127.0.0.1:9", "--period", "2"])
    assert live.target == [("127.0.0.1", 9)] and live.interval == 2.0
    export = sim_cli.build_subcommand_parser().parse_args(["export", "normal_chilled", "--out", "x",
                                                           "--interval", "30"])
    assert export.period == 30.0
