"""Command line: parses arguments and calls the library; nothing else.

Bad input (study file, arguments, data) prints one line `regbench: error: ...` and exits 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from regbench.errors import RegbenchError

RESULTS_DIR = Path("results")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line, status 2
        self.exit(2, f"regbench: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="regbench", description="Controlled regularization benchmarks.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

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
    run.add_argument("--pack-size", type=int, metavar="K",
                     help="train up to K cells together in one compiled step "
                          "(default: chosen from the model size; 1 = one cell at a time)")
    run.add_argument("--workers", type=int, metavar="N",
                     help="train packs side by side in N processes, sharing the CPU cores "
                          "(default: one per core, 1 on a GPU; or $REGBENCH_WORKERS)")
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
                    "that are not stored yet, one cell at a time, and write its report beside "
                    "reports/published/NAME/results.jsonl.")
    reproduce.add_argument("name", nargs="?", help="a reproduction (see --list)")
    reproduce.add_argument("--list", action="store_true", help="name the reproductions")
    reproduce.add_argument("--report-only", action="store_true",
                           help="rewrite the report from stored results; train nothing")
    reproduce.add_argument("--all", action="store_true",
                           help="with --report-only: every reproduction's report")
    reproduce.add_argument("--data-dir", help="folder with <dataset>.npz "
                                              "(default: $REGBENCH_DATA_DIR)")
    reproduce.add_argument("--quiet", action="store_true", help="no progress output")

    from regbench import bench, report
    report.add_commands(commands)
    bench.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ start-up chatter is not for users; set before it is imported.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = build_parser().parse_args(argv)
    try:
        command = getattr(args, "func", None) or {"run": cmd_run, "list": cmd_list,
                                                  "show": cmd_show,
                                                  "reproduce": cmd_reproduce}[args.command]
        return command(args)
    except RegbenchError as error:
        print(f"regbench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("regbench: interrupted; finished cells are stored, rerun to resume",
              file=sys.stderr)
        return 130


def default_store(study) -> Path:
    return RESULTS_DIR / f"{study.name}.jsonl"


def cmd_run(args) -> int:
    from regbench import store
    from regbench.study import load_study

    study = load_study(args.study).with_overrides(args.seeds, args.epochs, args.train_subset)
    path = args.store or default_store(study)
    if path.is_dir() or not path.name:
        raise RegbenchError(f"--store: {path} is a folder; expected a results .jsonl file")
    if args.executor == "local" and (args.address or args.cpus_per_cell != 1):
        raise RegbenchError("--address and --cpus-per-cell need --executor ray")
    if args.executor == "ray" and args.workers is not None:
        raise RegbenchError("--workers is for --executor local; Ray places packs itself "
                            "(--cpus-per-cell)")
    if args.workers is not None and args.workers < 1:
        raise RegbenchError(f"--workers: expected an integer >= 1, got {args.workers}")
    cells = study.cells()
    done = store.finished_keys(path, retry_failed=args.retry_failed)
    todo = [c for c in cells if c.key not in done]
    if args.dry_run:
        for cell in cells:
            state = "done" if cell.key in done else "todo"
            print(f"{cell.key}  {state}  {cell.dataset}  {cell.model.name}  "
                  f"{cell.arm.label}  seed={cell.seed}")
        print(f"{len(cells)} cells, {len(todo)} to train, store {path}")
        return 0
    progress = Progress(len(todo), quiet=args.quiet)
    progress.say(f"{study.name}: {len(cells)} cells, {len(cells) - len(todo)} stored, "
                 f"{len(todo)} to train -> {path}")
    if todo:
        from regbench import executors
        if args.executor == "ray":
            executors.run_ray(todo, path, args, progress, address=args.address,
                              cpus_per_cell=args.cpus_per_cell)
        else:
            executors.run_local(todo, path, args, progress)
    return cmd_show(argparse.Namespace(results=str(path)))


def cmd_reproduce(args) -> int:
    from regbench import reproduce

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
            out = reproduce.run(name, _local_trainer(args), say=Progress(0, args.quiet).say)
        print(f"wrote {out}/README.md and report.html")
    return 0


def _local_trainer(args):
    """train(cells, store): the cells not stored yet, one at a time, in this process."""
    from regbench import executors, store, train

    options = argparse.Namespace(pack_size=1, nondeterministic=False, data_dir=args.data_dir,
                                 retry_failed=False)

    def run(cells, path):
        done = store.finished_keys(path)
        todo = [c for c in cells if c.key not in done]
        if todo:
            train.configure(True)
            executors.run_local(todo, path, options, Progress(len(todo), quiet=args.quiet))

    return run


def cmd_list(args) -> int:
    import dataclasses

    from regbench.recipe import TECHNIQUES, Model, Training
    from regbench.study import DATASET_NAMES, DESIGNS

    def fields(cls):
        return ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(cls))

    print("datasets:   " + ", ".join(DATASET_NAMES))
    print("models:     mlp, cnn   [model] " + fields(Model))
    print("training:   [training] " + fields(Training))
    print("designs:    " + ", ".join(DESIGNS))
    print("techniques: none (no technique)")
    for name, cls in TECHNIQUES.items():
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        print(f"  {name:<15} {fields(cls)}\n  {'':<15} {doc}")
    return 0


def cmd_show(args) -> int:
    from regbench import store, summary

    path = Path(args.results)
    if path.suffix == ".toml":
        from regbench.study import load_study
        path = default_store(load_study(path))
    if not path.is_file():
        raise RegbenchError(f"{path}: no such results file")
    print(summary.format_table(summary.summarize(store.load(path))))
    return 0


class Progress:
    """Cells done/total, the epoch in progress and an ETA; one line per cell when not a TTY."""

    def __init__(self, total: int, quiet: bool = False, stream=sys.stderr):
        self.total, self.done, self.quiet, self.stream = total, 0, quiet, stream
        self.live = stream.isatty() and not os.environ.get("CI")
        self.began = self.pack_began = time.monotonic()
        self.cells = []

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    def _eta(self) -> str:
        if not self.done:
            return "?"
        left = (time.monotonic() - self.began) / self.done * (self.total - self.done)
        return f"{int(left // 60)}m{int(left % 60):02d}s"

    def skip(self) -> None:
        self.total -= 1  # trained by another runner

    def start(self, cells) -> None:
        self.cells, self.pack_began = cells, time.monotonic()

    def epoch(self, epoch: int, epochs: int, logs: dict) -> None:
        if self.live and not self.quiet:
            first, arms = self.cells[0], sorted({c.arm.label for c in self.cells})
            what = (f"{first.dataset} {first.model.name} {len(self.cells)} cells"
                    if len(self.cells) > 1 else f"{first.dataset} {first.model.name} "
                    f"{first.arm.label} seed={first.seed}")
            print(f"\r[{self.done + 1}/{self.total}] {what} ({', '.join(arms)[:40]}): "
                  f"epoch {epoch}/{epochs} val_acc {logs.get('val_acc', float('nan')):.4f}  "
                  f"ETA {self._eta()}\033[K", end="", file=self.stream, flush=True)

    def finish(self, row: dict) -> None:
        seconds = time.monotonic() - self.pack_began
        if row["status"] == "failed":
            result = f"FAILED ({row['error']})"
        else:
            result = (f"{row['status']}: test_acc {row['test_acc']:.4f} "
                      f"gap {row['gap_acc']:+.4f} epochs {row['epochs_run']}")
        packed = f", pack of {row['pack_size']}" if row.get("pack_size", 1) > 1 else ""
        self.done += 1
        start, end = ("\r", "\033[K") if self.live else ("", "")
        self.say(f"{start}[{self.done}/{self.total}] {row['dataset']} {row['model']} "
                 f"{row['arm']} seed={row['seed']}: {result} ({seconds:.1f} s{packed})  "
                 f"ETA {self._eta()}{end}")


if __name__ == "__main__":
    sys.exit(main())
