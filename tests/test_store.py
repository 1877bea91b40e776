"""regbench.store: an append-only JSON-lines file that survives killed and concurrent writers."""

import json
import math
import multiprocessing

import pandas as pd
import pytest

from regbench import store

CELL = {"problem": "mnist_mlp", "arm": "none", "seed": 0}  # what every row names
ROWS = [
    {"key": "a", "status": "ok", "test_acc": 0.9, "history": {"loss": [2.0, 1.0]},
     "layers": {"hidden_0": {"shape": [784, 16]}}, "note": "naïve ± µ"} | CELL,
    {"key": "b", "status": "diverged", "test_acc": float("nan"), "diverged_epoch": 1} | CELL,
    {"key": "c", "status": "failed", "error": "RuntimeError: out of memory"} | CELL,
]


@pytest.fixture
def path(tmp_path):
    return tmp_path / "results" / "study.jsonl"  # the folder does not exist yet


def filled(path, rows=ROWS):
    for row in rows:
        store.append(path, row)
    return path


def test_round_trip(path):
    filled(path)
    back = store.read_rows(path)
    assert len(back) == 3
    assert back[0] == ROWS[0] and back[2] == ROWS[2]
    assert math.isnan(back[1].pop("test_acc")) and back[1] == {
        k: v for k, v in ROWS[1].items() if k != "test_acc"}


def test_one_line_per_row(path):
    filled(path)
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 4
    assert [json.loads(line)["key"] for line in lines[:-1]] == ["a", "b", "c"]


def test_a_missing_store_has_no_rows(path):
    assert store.read_rows(path) == [] and store.finished_keys(path) == set()
    assert not path.exists()


def test_a_killed_writers_partial_line_is_skipped_then_cut_off(path):
    filled(path, ROWS[:2])
    whole = path.read_bytes()
    half = json.dumps({"key": "killed", "status": "ok", "test_acc": 0.5}).encode()[:20]
    with open(path, "ab") as f:
        f.write(half)  # what a writer killed in the middle of its write leaves
    assert [row["key"] for row in store.read_rows(path)] == ["a", "b"]
    assert store.finished_keys(path) == {"a", "b"}

    store.append(path, ROWS[2])
    assert path.read_bytes() == whole + json.dumps(ROWS[2], separators=(",", ":")).encode() + b"\n"
    assert [row["key"] for row in store.read_rows(path)] == ["a", "b", "c"]


def test_a_store_holding_only_a_partial_line(path):
    path.parent.mkdir()
    path.write_bytes(b'{"key": "x", "sta')
    assert store.read_rows(path) == []
    store.append(path, ROWS[0])
    assert store.read_rows(path) == [ROWS[0]]
    assert path.read_bytes().count(b"\n") == 1


def test_a_whole_last_row_without_its_newline_is_kept(path):
    # E.g. a store edited by hand: readers count the row as done, so appends must keep it.
    path.parent.mkdir()
    path.write_text(json.dumps(ROWS[0]))
    assert store.finished_keys(path) == {"a"}
    store.append(path, ROWS[2])
    assert [row["key"] for row in store.read_rows(path)] == ["a", "c"]
    assert path.read_text().count("\n") == 2


def test_finished_keys_count_failed_cells_unless_retrying(path):
    filled(path)
    assert store.finished_keys(path) == {"a", "b", "c"}
    assert store.finished_keys(path, retry_failed=True) == {"a", "b"}


def test_a_retried_cell_that_succeeded_is_finished(path):
    filled(path, [ROWS[2], {"key": "c", "status": "ok"} | CELL])
    assert store.finished_keys(path, retry_failed=True) == {"c"}


def test_latest_keeps_the_newest_row_per_key_in_order_of_first_appearance():
    rows = [{"key": "a", "status": "failed"}, {"key": "b", "status": "ok", "n": 1},
            {"key": "a", "status": "ok", "n": 2}]
    assert store.latest(rows) == [{"key": "a", "status": "ok", "n": 2},
                                  {"key": "b", "status": "ok", "n": 1}]


def test_load_gives_one_dataframe_row_per_cell(path):
    filled(path, [ROWS[2], ROWS[0], {**ROWS[2], "status": "ok", "test_acc": 0.7}])
    df = store.load(path)
    assert list(df["key"]) == ["c", "a"]
    assert list(df["status"]) == ["ok", "ok"] and list(df["test_acc"]) == [0.7, 0.9]


def test_load_of_a_missing_store_is_empty(path):
    assert store.load(path).empty


def test_pandas_reads_a_clean_store_directly(path):
    rows = [{"key": f"k{i}", "problem": "mnist_mlp", "arm": arm, "seed": i, "status": "ok",
             "test_acc": 0.5 + i / 10, "history": {"val_acc": [0.1, 0.2 + i]},
             "techniques": ["dropout"]}
            for i, arm in enumerate(["none", "dropout", "none"])]
    filled(path, rows)
    df = pd.read_json(path, lines=True)
    assert list(df.columns) == ["key", "problem", "arm", "seed", "status", "test_acc",
                                "history", "techniques"]
    assert list(df["key"]) == ["k0", "k1", "k2"] and list(df["seed"]) == [0, 1, 2]
    assert df["test_acc"].tolist() == pytest.approx([0.5, 0.6, 0.7])
    assert df["history"][1] == {"val_acc": [0.1, 1.2]}
    assert df.groupby("arm")["test_acc"].mean().to_dict() == pytest.approx(
        {"none": 0.6, "dropout": 0.6})


# --- concurrent writers ----------------------------------------------------------------------

ROWS_PER_WRITER = 150
PAD = "x" * 8000  # rows of ~8 kB: many pages, so an unlocked write could tear


def _writer(path, name, start):
    start.wait()
    for i in range(ROWS_PER_WRITER):
        store.append(path, {"key": f"{name}-{i}", "writer": name, "i": i, "pad": PAD} | CELL)


@pytest.mark.slow
def test_two_processes_appending_at_once_never_interleave(path):
    context = multiprocessing.get_context("spawn")  # no fork of a process that may hold TF
    start = context.Event()
    writers = [context.Process(target=_writer, args=(path, name, start)) for name in "AB"]
    for p in writers:
        p.start()
    start.set()
    for p in writers:
        p.join(timeout=120)
        assert p.exitcode == 0
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 2 * ROWS_PER_WRITER + 1
    rows = [json.loads(line) for line in lines[:-1]]  # every line is one whole row
    assert all(row["pad"] == PAD for row in rows)
    for name in "AB":
        assert [r["i"] for r in rows if r["writer"] == name] == list(range(ROWS_PER_WRITER))


# --- claims ----------------------------------------------------------------------------------

def test_a_cell_can_be_claimed_by_one_runner_at_a_time(path):
    with store.claim(path, "a") as first:
        with store.claim(path, "a") as second, store.claim(path, "b") as other:
            assert first and not second and other
    with store.claim(path, "a") as again:
        assert again  # released when its holder is done
    assert store.read_rows(path) == []  # claiming writes no row
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # nor other files


# --- stale rows: branch packs before the strategy was recorded skipped schedules ----------

PACKED = CELL | {"key": "k", "status": "ok", "pack_size": 4, "techniques": [], "lr_decay": 1.0,
          "momentum_epochs": 0, "curve_every": 0}


@pytest.mark.parametrize("setting", [{"lr_decay": 0.95}, {"momentum_epochs": 10},
                                     {"curve_every": 500}, {"techniques": ["l1_late"]}])
def test_a_branch_packed_row_with_a_schedule_is_not_reused(path, setting):
    store.append(path, PACKED | setting)
    assert store.stale(PACKED | setting)
    assert store.finished_keys(path) == set() and store.stale_keys(path) == {"k"}
    assert store.load(path).empty  # nor reported
    store.append(path, PACKED | setting | {"strategy": "branch"})  # trained again
    assert store.finished_keys(path) == {"k"} and store.stale_keys(path) == set()
    assert len(store.load(path)) == 1


@pytest.mark.parametrize("row", [
    PACKED,                                                   # packed, no schedule
    PACKED | {"lr_decay": 0.95, "pack_size": 1},              # trained alone
    PACKED | {"lr_decay": 0.95, "strategy": "branch"},        # by the one engine
])
def test_other_rows_are_reused(path, row):
    store.append(path, row)
    assert not store.stale(row) and store.finished_keys(path) == {"k"}


def test_no_committed_row_is_stale():
    from pathlib import Path

    stores = sorted(Path(__file__).parents[1].glob("reports/**/results.jsonl"))
    assert stores
    for results in stores:
        assert not store.stale_keys(results), results
