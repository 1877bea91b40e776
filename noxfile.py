"""Sessions: `nox -s tutorial` (the main job), `tests`, `lint`, `benchmarks`, `reports`.

Each session installs what it needs into its own virtual environment (reused between runs).
Data come from $REGBENCH_DATA_DIR, else the user cache, else the canonical download.
"""

import nox

nox.options.default_venv_backend = "uv|virtualenv"  # uv when present: much faster installs
nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "tests"]


@nox.session
def tutorial(session):
    """A real MNIST study (9 tutorial arms x 2 seeds x 3 epochs) and its comparison table."""
    session.install("-e", ".")
    session.run("regbench", "run", "ablations/mnist_tutorial.toml", "--seeds", "2",
                "--epochs", "3", *session.posargs)
    session.run("regbench", "report", "results/mnist_tutorial.jsonl",
                "--out", "results/mnist_tutorial")


@nox.session
def reports(session):
    """Regenerate every report under reports/ from its committed results.jsonl; no training."""
    session.install("-e", ".")
    session.run("regbench", "claims", "reports/mnist_tutorial/results.jsonl",
                "--out", "reports/claims")
    session.run("regbench", "report", "reports")  # each reports/<study>/ and the index


@nox.session
def tests(session):
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session):
    session.install("ruff")
    session.run("ruff", "check", ".")
