"""The command line follows the conventions of pytest and ruff: `--version`, a bare command
that says what it does, a description and examples in every subcommand's help, user and
developer commands apart, and a `list` that is complete and fits 100 columns."""

from __future__ import annotations

import re

import pytest

from regbench import __version__, cli, reproduce
from regbench.recipe import MODEL_NAMES, TECHNIQUES


def run(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exit_:  # argparse's --help and --version
        code = exit_.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_version(capsys):
    assert run(capsys, "--version") == (0, f"regbench {__version__}\n", "")


def test_a_bare_regbench_prints_usage_and_the_commands_grouped(capsys):
    code, out, err = run(capsys)
    assert code == 2 and err == ""
    assert out.startswith("usage: regbench [-h] [--version] COMMAND ...")
    users, developers = out.split("studies and reports:")[1].split("developers")
    assert re.findall(r"^  (\S+)", users, re.M) == list(cli.USER_COMMANDS)
    assert re.findall(r"^  (\S+)", developers, re.M) == list(cli.DEVELOPER_COMMANDS)


@pytest.mark.parametrize("command", [*cli.USER_COMMANDS, *cli.DEVELOPER_COMMANDS])
def test_every_command_has_a_description_and_an_example(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    description = out.split("\n\n")[1]
    assert description.strip() and not description.startswith(("positional", "options"))
    examples = out.split("examples:\n")[1].splitlines()
    assert examples and all(line.startswith(f"  regbench {command}") for line in examples)


def test_list_is_complete_and_fits_100_columns(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # from any folder
    code, out, _ = run(capsys, "list")
    assert code == 0
    assert max(map(len, out.splitlines())) <= 100
    for name in [*MODEL_NAMES, *TECHNIQUES, "ablations/mnist_tutorial.toml",
                 *reproduce.REPRODUCTIONS]:
        assert re.search(rf"(^|\W){re.escape(name)}\b", out), name
    # batchnorm's description whole, not cut at its semicolon
    assert "`position = \"before\"`" in " ".join(out.split())
    assert "(report stored)" in " ".join(out.split())  # reproductions with their state


@pytest.mark.slow
def test_a_reader_that_closes_the_pipe_ends_the_command_quietly():
    """`regbench show STORE | head -1`: no error line when head stops reading; the status of
    a process killed by SIGPIPE, as other Unix tools end."""
    import subprocess
    import sys
    from pathlib import Path

    store = Path(__file__).resolve().parents[1] / "reports/mnist_tutorial_backends/results.jsonl"
    show = subprocess.Popen([sys.executable, "-m", "regbench", "show", str(store)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    show.stdout.close()  # closed before the table is written: its first write breaks the pipe
    assert show.wait(timeout=60) == 141
    assert show.stderr.read() == b""
