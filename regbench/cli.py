"""Command line: parses arguments and calls the library; nothing else.

Bad input (study file, arguments, data) prints one line `regbench: error: ...` and exits 2.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import textwrap
import tomllib
from pathlib import Path

from regbench import interrupts
from regbench.errors import RegbenchError
from regbench.progress import Progress

RESULTS_DIR = Path("results")
CHECKOUT = Path(__file__).resolve().parents[1]  # where the shipped study files are


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line, status 2
        self.exit(2, f"regbench: error: {message}\n")


USER_COMMANDS = ("run", "show", "report", "claims", "reproduce", "list")
DEVELOPER_COMMANDS = ("bench-report", "bench-compare", "bench-grid")
EXAMPLES = {
    "run": ["regbench run ablations/mnist_tutorial.toml --seeds 2 --epochs 3",
            "regbench run my_study.toml --dry-run"],
    "show": ["regbench show results/mnist_tutorial.jsonl"],
    "report": ["regbench report results/mnist_tutorial.jsonl --out results/mnist_tutorial",
               "regbench report reports"],
    "claims": ["regbench claims reports/mnist_tutorial/results.jsonl",
               "regbench claims reports/mnist_tutorial/results.jsonl "
               "reports/mnist_tuned/results.jsonl"],
    "reproduce": ["regbench reproduce --list", "regbench reproduce ioffe2015_bn_mnist",
                  "regbench reproduce zhang2017_table1 --pack-size 1   # one cell at a time"],
    "list": ["regbench list"],
    "bench-report": ["regbench bench-report reports/benchmarks/raw/*.json"],
    "bench-compare": ["regbench bench-compare old.json new.json --fail-on-slower"],
    "bench-grid": ["regbench bench-grid --only mnist_b32"],
}


def _overview() -> str:
    def lines(names):
        return "\n".join(f"  {name:<14} {SUMMARIES[name]}" for name in names)
    return (f"studies and reports:\n{lines(USER_COMMANDS)}\n\n"
            f"developers (benchmarks of regbench itself):\n{lines(DEVELOPER_COMMANDS)}\n\n"
            "start with: regbench run ablations/mnist_tutorial.toml --seeds 2 --epochs 3\n"
            "help on one command: regbench COMMAND --help")


SUMMARIES = {
    "run": "train every cell of a study that is not stored yet",
    "show": "n and mean ± std per arm of stored results",
    "report": "write the Markdown and HTML report of a results store",
    "claims": "test the Keras tutorial's claims on its study's results",
    "reproduce": "reproduce a published comparison",
    "list": "datasets, models, techniques, study files and reproductions",
    "bench-report": "tables, plot and fingerprint from step-benchmark JSON",
    "bench-compare": "what got slower or faster between two benchmark runs",
    "bench-grid": "whole-study time and memory: regbench against the naive loop",
}


def build_parser() -> argparse.ArgumentParser:
    from regbench import __version__

    parser = _Parser(prog="regbench", formatter_class=argparse.RawDescriptionHelpFormatter,
                     usage="regbench [-h] [--version] COMMAND ...",
                     description="Controlled experiments on what regularization does: "
                                 "ablation studies over paired seeds, and their reports.",
                     epilog=_overview())
    parser.add_argument("--version", action="version", version=f"regbench {__version__}")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND",
                                     help=argparse.SUPPRESS)

    run = commands.add_parser("run", help="train every cell of a study that is not stored yet")
    run.add_argument("study", help="study file (TOML), e.g. ablations/mnist_tutorial.toml")
    run.add_argument("--seeds", type=int, help="use the first N seeds (or seeds 0..N-1)")
    run.add_argument("--epochs", type=int, help="override training.epochs")
    run.add_argument("--train-subset", type=int, metavar="N",
                     help="train on the first N examples of each seed's training split")
    run.add_argument("--store", type=Path,
                     help="results file (default: results/<study name>.jsonl)")
    run.add_argument("--data-dir", help="folder with <dataset>.npz (default: $REGBENCH_DATA_DIR)")
    run.add_argument("--dry-run", action="store_true", help="list the cells, train nothing")
    run.add_argument("--retry-failed", action="store_true", help="train failed cells again")
    _add_packing_options(run)
    run.add_argument("--executor", choices=("local", "ray"), default="local",
                     help="where cells are trained: this process, or a Ray cluster")
    run.add_argument("--address", metavar="HOST:PORT",
                     help="Ray cluster to join (default: a local Ray instance, or $RAY_ADDRESS)")
    run.add_argument("--cpus-per-cell", type=float, default=1, metavar="N",
                     help="CPUs Ray reserves per cell or pack (default: 1)")
    run.add_argument("--nondeterministic", action="store_true",
                     help="allow nondeterministic kernels (faster on some devices)")
    run.add_argument("--quiet", action="store_true", help="no progress output")

    commands.add_parser("list", help="datasets, models and techniques with their defaults")

    show = commands.add_parser("show", help="n and mean ± std per arm of stored results")
    show.add_argument("results", help="a results .jsonl file, or a study file")

    reproduce = commands.add_parser(
        "reproduce", help="reproduce a published comparison -> reports/published/NAME/",
        description="Train the study files of a published comparison (ablations/published/) "
                    "that are not stored yet, packed and stacked as `regbench run` plans them, "
                    "and write its report beside reports/published/NAME/results.jsonl.")
    reproduce.add_argument("name", nargs="?", help="a reproduction (see --list)")
    reproduce.add_argument("--list", action="store_true", help="name the reproductions")
    reproduce.add_argument("--report-only", action="store_true",
                           help="rewrite the report from stored results; train nothing")
    reproduce.add_argument("--all", action="store_true",
                           help="with --report-only: every reproduction's report")
    reproduce.add_argument("--data-dir", help="folder with <dataset>.npz "
                                              "(default: $REGBENCH_DATA_DIR)")
    _add_packing_options(reproduce)
    reproduce.add_argument("--quiet", action="store_true", help="no progress output")

    _add_report_commands(commands)
    _add_bench_commands(commands)
    for name, command in commands.choices.items():  # a description and examples for each
        command.formatter_class = argparse.RawDescriptionHelpFormatter
        command.description = command.description or SUMMARIES[name] + "."
        command.epilog = "examples:\n" + "\n".join(f"  {e}" for e in EXAMPLES[name])
    return parser


def _add_report_commands(commands) -> None:
    report = commands.add_parser(
        "report", help="write the Markdown and HTML report of a results store (no training)",
        description="Write README.md, report.html, figures/ and CSV tables of one results "
                    "store; given a folder, do so for every <folder>/<study>/results.jsonl "
                    "and write <folder>/README.md, the index.")
    report.add_argument("results", help="a results .jsonl file, or a folder of reports")
    report.add_argument("--out", help="report folder (default: reports/<study>/, or the "
                                      "results file's folder when it is results.jsonl)")
    report.set_defaults(func=cmd_report)
    claims = commands.add_parser(
        "claims", help="test the Keras tutorial's claims on its study's results",
        description="Verdict and evidence for each claim of shared/reference/tutorial.md, "
                    "computed from the results of the mnist_tutorial study.")
    claims.add_argument("results", nargs="+", help="results .jsonl of the tutorial study, and "
                        "optionally of its tuned study (tested side by side)")
    claims.add_argument("--out", default="reports/claims", help="default: reports/claims/")
    claims.set_defaults(func=cmd_claims)


BENCH_DIR = Path("reports/benchmarks")


def _add_bench_commands(commands) -> None:
    report = commands.add_parser(
        "bench-report",
        help="the step-benchmark report (README.md, report.html) from benchmark JSON")
    report.add_argument("raw", nargs="*", type=Path,
                        help=f"pytest-benchmark JSON files (default: {BENCH_DIR}/raw/*.json)")
    report.add_argument("--out", type=Path, default=BENCH_DIR,
                        help=f"output folder (default: {BENCH_DIR})")
    report.set_defaults(func=cmd_bench_report)

    comparison = commands.add_parser(
        "bench-compare", help="what got slower or faster between two benchmark JSON files")
    comparison.add_argument("baseline", type=Path, help="pytest-benchmark JSON of the baseline")
    comparison.add_argument("new", type=Path, help="pytest-benchmark JSON of the new run")
    comparison.add_argument("--alpha", type=float, default=0.05,
                            help="family-wise error rate (Holm) (default: 0.05)")
    comparison.add_argument("--fail-on-slower", action="store_true",
                            help="exit 1 if anything got significantly slower")
    comparison.set_defaults(func=cmd_bench_compare)

    grid = commands.add_parser(
        "bench-grid", help="whole-study wall time and memory: regbench vs the naive loop")
    grid.add_argument("--only", metavar="NAMES",
                      help="these configurations, comma-separated (see reports/benchmarks/"
                           "grid.md): mnist_b32, mnist_b128, cifar10_b64")
    grid.add_argument("--out", type=Path, default=BENCH_DIR,
                      help=f"output folder; a run there before is resumed (default: {BENCH_DIR})")
    grid.add_argument("--rounds", type=int, default=3,
                      help="interleaved rounds of every engine, for an interval (default: 3)")
    grid.add_argument("--data-dir", help="folder with <dataset>.npz (default: $REGBENCH_DATA_DIR)")
    grid.set_defaults(func=cmd_bench_grid)


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ start-up chatter is not for users; set before it is imported.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with interrupts.handled():  # SIGINT and SIGTERM: one line, status 130 or 143
        try:
            parser = build_parser()
            args = parser.parse_args(argv)
            if args.command is None:  # a bare `regbench`: what it does and its commands
                parser.print_help()
                return 2
            command = getattr(args, "func", None) or {"run": cmd_run, "list": cmd_list,
                                                      "show": cmd_show,
                                                      "reproduce": cmd_reproduce}[args.command]
            return command(args)
        except RegbenchError as error:
            print(f"regbench: error: {error}", file=sys.stderr)
            return 2
        except BrokenPipeError:  # `regbench show ... | head`: the reader has all it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error
            return 128 + signal.SIGPIPE
        except (ImportError, OSError) as error:  # the machine's fault, not the input's
            if interrupts.cause(error) is not None:  # an import a signal cut short
                return interrupts.report(interrupts.cause(error))
            print(f"regbench: error: {_environment_error(error)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as interrupt:
            return interrupts.report(interrupt)


def _environment_error(error: Exception) -> str:
    """A missing module or a failed system call as one line: what failed (and, for a module,
    how to install it)."""
    text = " ".join(str(error).split())
    if isinstance(error, ImportError):
        return (f"a module regbench needs cannot be imported ({type(error).__name__}: {text}); "
                "install regbench's dependencies (pip install -e .)")
    return f"{type(error).__name__}: {text}"


def default_store(study) -> Path:
    return RESULTS_DIR / f"{study.name}.jsonl"


def cmd_run(args) -> int:
    from regbench import executors, provenance, store
    from regbench.study import load_study

    study = load_study(args.study).with_overrides(args.seeds, args.epochs, args.train_subset)
    path = args.store or default_store(study)
    if os.path.isdir(path) or not path.name:
        raise RegbenchError(f"--store: {path} is a folder; expected a results .jsonl file")
    _check_store(path, args.study)
    if args.executor == "local" and (args.address or args.cpus_per_cell != 1):
        raise RegbenchError("--address and --cpus-per-cell need --executor ray")
    if args.executor == "ray" and args.workers is not None:
        raise RegbenchError("--workers is for --executor local; Ray places packs itself "
                            "(--cpus-per-cell)")
    _check_packing_options(args)
    options = executors.RunOptions(data_dir=args.data_dir,
                                   deterministic=not args.nondeterministic,
                                   retry_failed=args.retry_failed, pack_size=args.pack_size,
                                   workers=args.workers)
    cells, waiting = planned(study, path)
    done = store.finished_keys(path, retry_failed=args.retry_failed)
    _warn_foreign(path)
    todo = [c for c in cells if c.key not in done]
    if args.dry_run:
        for cell in cells:
            state = "done" if cell.key in done else "todo"
            print(f"{cell.key}  {state}  {cell.dataset}  {cell.model.name}  "
                  f"{cell.arm.label}  seed={cell.seed}")
        if waiting:
            print(f"then {waiting} final cells, at the grid points the tuning cells choose on "
                  "validation")
        print(f"{len(cells)} cells, {len(todo)} to train, store {path}")
        return 0
    if todo:
        provenance.check_backend()
        executors.check_data(todo, options)  # before any folder, TensorFlow or output
    progress = Progress(len(todo) + waiting, quiet=args.quiet)
    stale = store.stale_keys(path) & {cell.key for cell in cells}
    if stale:
        progress.say(f"{len(stale)} stored rows were trained in branch packs that skipped "
                     "their schedules or curves (before the strategy was recorded in rows); "
                     "they are trained again")
    progress.say(f"{study.name}: {len(cells) + waiting} cells, {len(cells) - len(todo)} "
                 f"stored, {len(todo) + waiting} to train -> {path}")
    created = not os.path.lexists(path)
    try:
        while todo:  # a tuned design: the tuning cells, then the final cells they choose
            if args.executor == "ray":
                executors.run_ray(todo, path, options, progress, address=args.address,
                                  cpus_per_cell=args.cpus_per_cell)
            else:
                executors.run_local(todo, path, options, progress)
            trained = {cell.key for cell in todo}
            cells, waiting = planned(study, path)
            todo = [c for c in cells if c.key not in store.finished_keys(
                path, retry_failed=args.retry_failed) and c.key not in trained]
    except store.StoreError as error:  # a full disk, a file size limit: say what is saved
        raise RegbenchError(f"{error}; {_stored(path, cells)} of {len(cells)} cells are "
                            "stored, rerun to resume") from None
    finally:
        if created:  # a run that stored nothing (bad data, interrupted) leaves no store
            store.remove_if_empty(path)
    labels = [g.label for g in study.tuning.grids] if study.tuning else None
    show(path, warn=False, arms=labels or [arm.label for arm in study.arms])
    out = path.parent if path.name == "results.jsonl" else path.with_suffix("")
    print(f"its report, in {out}/: regbench report {path} --out {out}")
    return 0


def planned(study, path: Path):
    """The cells of `study` that can be planned from what `path` stores, and how many more
    wait: a tuned design's final cells wait for their grid's tuning cells."""
    from regbench import store, tuning

    cells = study.cells()
    if study.tuning is None:
        return cells, 0
    finals = study.final_cells(tuning.choose(study, store.read_rows(path)))
    every = study.final_cells({grid.label: grid.points[0] for grid in study.tuning.grids})
    return cells + finals, len(every) - len(finals)


def _check_store(path: Path, study: str) -> None:
    """Refuse, before anything starts, a store that is not a regular file on a disk, cannot
    be created, or is the study file itself."""
    from regbench import paths

    info = paths.file_to_write(path, "--store", "a results .jsonl file")
    try:
        same = info is not None and os.path.samestat(info, os.stat(study))
    except OSError:
        same = False
    if same:
        raise RegbenchError(f"--store: {path} is the study file {study}; give a results "
                            ".jsonl file")


def _stored(path: Path, cells) -> str:
    from regbench import store

    try:
        return str(len(store.finished_keys(path) & {cell.key for cell in cells}))
    except RegbenchError:
        return "?"


def _warn_foreign(path: Path) -> None:
    """One line when the store holds lines that are not regbench rows (they are skipped)."""
    from regbench import store

    foreign = store.scan(path)[1]
    if foreign:
        lines = ("1 line that is not a regbench row" if foreign == 1
                 else f"{foreign} lines that are not regbench rows")
        print(f"regbench: warning: {path}: skipped {lines}", file=sys.stderr)


def _check_results(path: Path) -> None:
    """A results file to read: a regular file on a disk that exists."""
    from regbench import paths

    if paths.existing_file(path, "", "a results .jsonl file") is None:
        raise RegbenchError(f"{path}: no such results file")


def _check_rows(path: Path) -> None:
    """A store to report on holds rows; one of foreign lines alone is one line of error."""
    from regbench import store

    rows, foreign = store.scan(path)
    if not rows:
        raise RegbenchError(f"{path}: no result rows" + (
            f" ({foreign} lines that are not regbench rows)" if foreign else ""))


def _check_out(out: Path, what: str) -> None:
    from regbench import paths

    paths.folder_to_write(out, what)


def _add_packing_options(command) -> None:
    command.add_argument("--pack-size", type=int, metavar="K",
                         help="train up to K cells together in one compiled step "
                              "(default: chosen from the model size; 1 = one cell at a time)")
    command.add_argument("--workers", type=int, metavar="N",
                         help="train packs side by side in N processes, sharing the CPU cores "
                              "(default: one per core, 1 on a GPU; or $REGBENCH_WORKERS)")


def _check_packing_options(args) -> None:
    from regbench import executors

    if args.workers is not None:
        executors.check_workers(args.workers, "--workers")
    if args.pack_size is not None and args.pack_size < 1:
        raise RegbenchError(f"--pack-size: expected an integer >= 1, got {args.pack_size}")


def cmd_reproduce(args) -> int:
    from regbench import provenance, reproduce

    _check_packing_options(args)
    if args.list:
        if args.name or args.all or args.report_only:
            raise RegbenchError("--list: takes no name and no other option")
        print("\n".join(reproduce.listing()))
        return 0
    if args.all:
        if args.name or not args.report_only:
            raise RegbenchError("--all: only with --report-only and no name")
        names = list(reproduce.REPRODUCTIONS)
    elif not args.name:
        raise RegbenchError("reproduce: give a NAME (see `regbench reproduce --list`)")
    else:
        reproduce.get(args.name)  # an unknown name fails here, before anything is written
        names = [args.name]
    for name in names:
        if args.report_only:
            out = reproduce.write(name)
        else:
            provenance.check_backend()
            out = reproduce.run(name, _local_trainer(args), say=Progress(0, args.quiet).say)
        print(f"wrote {out}/README.md and report.html" if out else
              f"{name}: not run here, no report; listed in {reproduce.index_path()}")
    return 0


def _local_trainer(args):
    """train(cells, store): the cells not stored yet, as `regbench run` trains them."""
    from regbench import engine, executors, store

    options = executors.RunOptions(data_dir=args.data_dir, pack_size=args.pack_size,
                                   workers=args.workers)

    def run(cells, path):
        done = store.finished_keys(path)
        todo = [c for c in cells if c.key not in done]
        if todo:
            engine.configure(True)
            executors.run_local(todo, path, options, Progress(len(todo), quiet=args.quiet))

    return run


WIDTH = 100  # columns of `regbench list`


def cmd_list(args) -> int:
    import dataclasses
    import textwrap

    from regbench import reproduce
    from regbench.recipe import MODEL_NAMES, TECHNIQUES, Model, Training
    from regbench.study import DATASET_NAMES, DESIGNS

    def say(label: str, text: str, indent: int = 12) -> None:
        print(textwrap.fill(text, WIDTH, initial_indent=f"{label:<{indent}}",
                            subsequent_indent=" " * indent))

    def fields(cls) -> str:  # what a study file may set
        return ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(cls)
                         if "set_by" not in f.metadata)

    def summary(cls) -> str:  # the docstring's first paragraph, on one line
        return " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())

    say("datasets:", ", ".join(DATASET_NAMES))
    say("", 'your own arrays: "npz:data/mine.npz" (beside the study file: x_train, y_train, '
            "x_test, y_test in the Keras layout, uint8 images); tensorflow-datasets: "
            '"tfds:svhn_cropped" (prepared in $TFDS_DATA_DIR; image classification with '
            "train and test splits)")
    say("models:", ", ".join(MODEL_NAMES) + f"; [model] {fields(Model)}")
    say("", 'your own network: [model] builder = "my_models:convnet" (a function of '
            "my_models.py beside the study file: convnet(input_shape, classes, reg) -> "
            'keras.Model; see examples/keras_convnet.py), or builder = "net.keras" (a saved '
            "model's architecture)")
    say("training:", f"[training] {fields(Training)}")
    say("designs:", ", ".join(DESIGNS))
    print("techniques: none (no technique), and in [techniques.NAME] with these defaults:")
    for name, cls in TECHNIQUES.items():
        say(f"  {name}", fields(cls) or "no parameters", indent=18)
        say("", summary(cls), indent=18)
    studies = [path.relative_to(CHECKOUT) for folder in ("ablations", "examples")
               for path in sorted((CHECKOUT / folder).glob("*.toml"))]
    if studies:
        print("study files (regbench run FILE):")
        indent = 4 + max(len(str(path)) for path in studies)
        for path in studies:
            text = tomllib.loads((CHECKOUT / path).read_text(encoding="utf-8"))
            say(f"  {path}", str(text.get("description", "")), indent=indent)
    print("reproductions (regbench reproduce NAME):")
    for line in reproduce.listing():
        name, _, rest = line.partition(" ")
        say(f"  {name}", rest.strip(), indent=32)
    return 0


def cmd_show(args) -> int:
    path = Path(args.results)
    if path.suffix == ".toml":
        from regbench.study import load_study
        path = default_store(load_study(path))
    return show(path)


def show(path: Path, warn: bool = True, arms=None) -> int:
    """The per-arm table of a store; `arms`: a study's order of its arms."""
    from regbench import store, summary

    _check_results(path)
    if warn:
        _warn_foreign(path)
    rows = store.load(path)
    if "role" in rows and (rows["role"] == "tuning").any():  # a tuned design's store
        tuned = rows[rows["role"] == "tuning"]
        rows = rows[rows["role"] != "tuning"]
        picks = (rows[rows["grid_point"] != rows["arm"]].drop_duplicates("arm")
                 if "grid_point" in rows else rows.iloc[:0])
        print(textwrap.fill(f"{len(tuned)} tuning cells, seeds {sorted(set(tuned['seed']))}; "
                            "chosen on validation: "
                            + (", ".join(picks["grid_point"]) or "none yet"),
                            width=100, break_on_hyphens=False, subsequent_indent="  "))
    print(summary.format_table(summary.summarize(rows, arms=arms)))
    return 0


def cmd_report(args) -> int:
    from regbench import report, report_index

    path = Path(args.results)
    if args.out is not None and not args.out:
        raise RegbenchError("--out: an empty path; give a folder (or leave --out out for the "
                            "default)")
    if os.path.isdir(path):
        if args.out:
            raise RegbenchError("--out: not used with a folder of reports (each report is "
                                "written beside its results.jsonl)")
        *folders, index = report_index.write_folder(path)
        for folder in folders:
            print(f"wrote {report.display_path(folder)}/README.md and report.html")
        print(f"wrote {report.display_path(index)}")
        return 0
    _check_results(path)
    _check_rows(path)
    out = Path(args.out) if args.out else report.default_out(path)
    _check_out(out, "--out" if args.out else "report folder")
    _warn_foreign(path)
    try:
        report.write_report(path, out)
    except OSError as error:  # a full disk while writing
        raise RegbenchError(f"cannot write the report in {out} ({error.strerror}); "
                            "free space or give another --out") from None
    print(f"wrote {report.display_path(out)}/README.md and report.html")
    return 0


def cmd_claims(args) -> int:
    from regbench import claims, report

    if not args.out:
        raise RegbenchError("--out: an empty path; give a folder (default: reports/claims)")
    out = Path(args.out)
    for results in args.results:
        _check_results(Path(results))
    _check_out(out, "--out")
    for results in args.results:
        _warn_foreign(Path(results))
    try:
        claims.write_claims(args.results, out)
    except OSError as error:  # a full disk while writing
        raise RegbenchError(f"cannot write the claims report in {out} ({error.strerror}); "
                            "free space or give another --out") from None
    print(f"wrote {report.display_path(out)}/README.md and report.html")
    return 0


def cmd_bench_report(args) -> int:
    from regbench import bench

    raw = args.raw or sorted((BENCH_DIR / "raw").glob("*.json"))
    for path in bench.write_report(raw, args.out):
        print(path)
    return 0


def cmd_bench_compare(args) -> int:
    from regbench import bench

    if not 0.0 < args.alpha < 1.0:
        raise RegbenchError(f"--alpha must be in (0, 1), got {args.alpha}")
    baseline, _ = bench.load_runs([args.baseline])
    new, _ = bench.load_runs([args.new])
    result = bench.compare(baseline, new, args.alpha)
    names = {side: set(zip(df["backend"], df["name"])) for side, df in
             (("baseline", baseline), ("new", new))}
    only_in = {"baseline": {n for _, n in names["baseline"] - names["new"]},
               "new": {n for _, n in names["new"] - names["baseline"]}}
    print(bench.format_comparison(result, args.alpha, only_in))
    return 1 if args.fail_on_slower and (result["change"] == "slower").any() else 0


def cmd_bench_grid(args) -> int:
    from regbench import provenance
    from regbench.bench import grid as gridbench

    gridbench.configs(args.only)  # an empty or unknown name: refused before anything starts
    if not 1 <= args.rounds <= 100:
        raise RegbenchError(f"--rounds: expected an integer in [1, 100], got {args.rounds}")
    _check_out(args.out, "--out")  # before an hour of training, not after
    provenance.check_backend()
    summary = gridbench.run_grid(args.only, args.out,
                                 args.data_dir or os.environ.get("REGBENCH_DATA_DIR"),
                                 say=lambda text: print(text, flush=True), rounds=args.rounds)
    for s in summary:
        print(f"{s['config']}: {gridbench._speedup(s).replace('**', '')} (target "
              f"{s['target']:g}x), {s['arms_agree']}/{len(s['arms'])} arms equivalent")
    print(args.out / "grid.md")
    return 0


if __name__ == "__main__":  # `python -m regbench.cli`: as the console script
    sys.exit(interrupts.console(main))
