"""Sessions: `nox -s tutorial` (the main job), `tests`, `lint`, `benchmarks`, `reports`,
`reproduce`, `backends` (regbench on JAX without TensorFlow).

Each session installs what it needs into its own virtual environment (reused between runs).
Data come from $REGBENCH_DATA_DIR, else the user cache, else the canonical download.
"""

import os

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
                "reports/mnist_tuned/results.jsonl", "--out", "reports/claims")
    session.run("regbench", "bench-report")  # reports/benchmarks/ from its raw/*.json, untimed
    session.run("regbench", "report", "reports")  # each reports/<study>/ and the index
    session.run("regbench", "reproduce", "--all", "--report-only")  # reports/published/*/
    # The first screen of each page as a browser shows it, for review; not committed.
    session.run("python", "tests/browser.py", "screenshots", success_codes=[0, 1])


@nox.session
def reproduce(session):
    """A published comparison: `nox -s reproduce -- NAME` (`-- --list` names them).

    Trains the study files of ablations/published/ that NAME needs and are not stored yet,
    then writes reports/published/NAME/.
    """
    session.install("-e", ".")
    session.run("regbench", "reproduce", *(session.posargs or ["--list"]))


@nox.session
def tests(session):
    """The test suite, in two processes (about 15 min on 2 cores); Ray comes along so the
    executor tests run a real local cluster. `nox -s tests -- -m "not slow"`: the fast
    subset (about 1 min), without real training, subprocesses or Ray."""
    session.install("-e", ".[test,ray]")
    session.run("pytest", "-n", "2", *session.posargs)


@nox.session
def backends(session):
    """regbench without TensorFlow: Keras on JAX (CPU), in an environment TensorFlow is not
    installed in. The smoke study, a stacked MNIST study, the engine's equivalence and
    determinism tests, and a subset of the step benchmarks."""
    session.install("-r", "requirements/jax.txt")
    session.install("--no-deps", "-e", ".")
    session.run("python", "-c", "import importlib.util, sys; "
                "sys.exit('TensorFlow is installed' if importlib.util.find_spec('tensorflow') "
                "else 0)")
    env = {"KERAS_BACKEND": "jax"}
    work = session.create_tmp()
    session.run("regbench", "run", "ablations/smoke.toml", "--store", f"{work}/smoke.jsonl",
                env=env)
    session.run("regbench", "run", "ablations/mnist_tutorial.toml", "--seeds", "2",
                "--epochs", "1", "--train-subset", "2000", "--pack-size", "16",
                "--store", f"{work}/tutorial.jsonl", env=env)
    session.run("python", "-m", "pytest", "-p", "no:cacheprovider", "tests/test_engine.py",
                "tests/test_loop.py", "tests/test_backends.py", *session.posargs, env=env)
    session.run("python", "-m", "pytest", "benchmarks", "-p", "no:cacheprovider",
                "-k", "cpu and mnist_mlp- and b128", f"--benchmark-json={work}/jax.json",
                env=env)
    session.run("regbench", "bench-report", f"{work}/jax.json", "--out", f"{work}/bench",
                env=env)


@nox.session
def lint(session):
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session
def benchmarks(session):
    """Training-step time of every technique, on the CPU and any visible GPU, under every Keras
    backend installed here (TensorFlow and JAX) -> reports/benchmarks/ (about 20 min on 2
    cores). `-- --full` (or REGBENCH_BENCH_PROFILE=full): the long profile. `-- --grid`: then
    whole studies, regbench against the naive loop (`regbench bench-grid`, about 3.5 h on 2
    cores: 3 rounds; killed, it resumes) -> reports/benchmarks/grid.md. Other arguments go
    to pytest.
    """
    session.install("-e", ".[test,jax]")  # TensorFlow and JAX rows side by side
    grid = "--grid" in session.posargs
    posargs = [arg for arg in session.posargs if arg != "--grid"]
    os.makedirs("reports/benchmarks/raw", exist_ok=True)
    written = []
    for backend in ("tensorflow", "jax", "torch"):
        found = session.run("python", "-c", "import importlib.util; "
                            f"print(importlib.util.find_spec({backend!r}) is not None)",
                            silent=True).strip()
        if found != "True":
            session.log(f"KERAS_BACKEND={backend}: not installed, skipped")
            continue
        raw = f"reports/benchmarks/raw/{backend}.json"
        session.run("python", "-m", "pytest", "benchmarks", "-p", "no:cacheprovider",
                    f"--benchmark-json={raw}", "--benchmark-columns=median,iqr,rounds,iterations",
                    "--benchmark-sort=fullname", *posargs,
                    env={"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"})
        written.append(raw)
    session.run("regbench", "bench-report", *written)
    if grid:
        session.run("regbench", "bench-grid")
