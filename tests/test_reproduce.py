"""`regbench reproduce`: the data files (a round trip, one-line errors), names, bad input,
selection on validation only, the claim verdicts, one small Table 9-style reproduction trained
end to end, and the committed reports."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import textwrap
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from regbench import engine, reproduce, store
from regbench.errors import RegbenchError
from regbench.reproduce import common, ioffe, registry, reports, srivastava
from regbench.reproduce.registry import Probe, Published, Reproduction, Table9Row

REPO = Path(__file__).resolve().parents[1]


# --- the data files --------------------------------------------------------------------------

def _toml(value) -> str:
    """A value as TOML: JSON's strings, numbers and arrays are TOML's; tables inline."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(_toml, value)) + "]"
    return json.dumps(value)


def _paper_file(repros: list[Reproduction]) -> str:
    """One paper's data file, written back from its reproductions."""
    lines = [f"citation = {_toml(repros[0].published.citation)}"]
    for published in {r.published.report: r.published for r in repros}.values():
        lines += [f"[published.{published.report}]", f"report = {_toml(published.report)}",
                  f"budget = {_toml(published.budget)}",
                  f"rows = {_toml([dataclasses.asdict(row) for row in published.rows])}"]
    for repro in repros:
        lines += [f"[reproductions.{repro.name}]",
                  f"published = {_toml(repro.published.report)}"]
        lines += [f"{f.name} = {_toml(dataclasses.asdict(repro)[f.name])}"
                  for f in dataclasses.fields(repro) if f.name not in ("name", "published")]
    return "\n".join(lines) + "\n"


def test_the_registry_round_trips_through_its_data_files(tmp_path):
    """Every reproduction written back to data files reads back equal, in the same order."""
    studies = tmp_path / "published"
    shutil.copytree(REPO / registry.STUDY_DIR, studies,
                    ignore=shutil.ignore_patterns("reproductions"))
    folder = studies / "reproductions"
    folder.mkdir()
    papers: dict[str, list] = {}
    for repro in reproduce.REPRODUCTIONS.values():
        papers.setdefault(repro.published.citation, []).append(repro)
    names = [f"paper{i}" for i in range(len(papers))]
    (folder / "index.toml").write_text(f"papers = {_toml(names)}\n")
    for name, repros in zip(names, papers.values()):
        (folder / f"{name}.toml").write_text(_paper_file(repros))
    loaded = registry.load(folder)
    assert loaded == reproduce.REPRODUCTIONS and list(loaded) == list(reproduce.REPRODUCTIONS)
    assert [list(r.published.budget) for r in loaded.values()] == \
        [list(r.published.budget) for r in reproduce.REPRODUCTIONS.values()]


def test_the_committed_data_files_read_as_the_reproductions():
    table9 = reproduce.get("srivastava2014_table9_narrow")
    assert table9.published is reproduce.get("srivastava2014_table9").published
    assert table9.published.rows[0] == Table9Row("L2", 1.62, ("l2_1e-5", "l2_1e-4"))
    assert (table9.final_seeds, table9.stretch) == ((0, 1, 2), 3)
    assert reproduce.get("zhang2017_table1").probes == (Probe("zhang2017_table1_alexnet", 2),)
    assert set(registry.ROW_TYPES) == set(reports.REPORTS)  # every report can be written


TINY_PAPER = """
    citation = "A. Author (2020), *A paper*"
    [published.table9]
    report = "table9"
    [published.table9.budget]
    network = "784-10"
    "runs per row" = "not given"
    [[published.table9.rows]]
    method = "L2"
    error = 1.62
    grid = ["l2_small", "l2_large"]
    [reproductions.tiny]
    published = "table9"
    title = "A tiny reproduction"
    variant = "tiny: 784-16-10"
    studies = ["tiny_tuning"]
    not_run = ["tiny_tuning"]
    probes = [{ study = "tiny_tuning" }]
    final_seeds = [0, 1]
    stretch = 2
    stretch_methods = ["L2"]
    notes = ["A note."]
"""


def _write_paper(tmp_path, text: str = TINY_PAPER) -> Path:
    """A registry folder holding one paper, `tiny2020.toml`, beside a study file."""
    folder = tmp_path / "published" / "reproductions"
    folder.mkdir(parents=True)
    (tmp_path / "published" / "tiny_tuning.toml").write_text(textwrap.dedent(TINY_TUNING))
    (folder / "index.toml").write_text('papers = ["tiny2020"]\n')
    (folder / "tiny2020.toml").write_text(textwrap.dedent(text))
    return folder


def test_a_data_file_reads_field_by_field(tmp_path):
    published = Published("A. Author (2020), *A paper*", "table9",
                          {"network": "784-10", "runs per row": "not given"},
                          (Table9Row("L2", 1.62, ("l2_small", "l2_large")),))
    assert registry.load(_write_paper(tmp_path)) == {"tiny": Reproduction(
        "tiny", "A tiny reproduction", published, ("tiny_tuning",), not_run=("tiny_tuning",),
        probes=(Probe("tiny_tuning", epochs=2),), final_seeds=(0, 1), stretch=2,
        stretch_methods=("L2",), variant="tiny: 784-16-10", notes=("A note.",))}


@pytest.mark.parametrize("old, new, message", [
    ("final_seeds = [0, 1]", 'final_seeds = "0, 1"',
     "reproductions.tiny.final_seeds: expected a list, got '0, 1'"),
    ("final_seeds = [0, 1]", 'final_seeds = [0, "1"]',
     "reproductions.tiny.final_seeds[1]: expected an integer, got '1'"),
    ("stretch = 2", "stretch = true", "reproductions.tiny.stretch: expected an integer, got True"),
    ("error = 1.62", 'error = "1.62"',
     "published.table9.rows[0].error: expected a number, got '1.62'"),
    ('"runs per row" = "not given"', '"runs per row" = 3',
     'published.table9.budget."runs per row": expected a string, got 3'),
    ('title = "A tiny reproduction"', "",
     "reproductions.tiny.title: missing"),
    ("stretch = 2", "seeds = [1]",
     "reproductions.tiny.seeds: unknown field; expected one of final_seeds, not_run, notes, "
     "probes, stretch, stretch_methods, studies, title, variant"),
    ('probes = [{ study = "tiny_tuning" }]', 'probes = [{ study = "tiny_tuning", seed = 1 }]',
     "reproductions.tiny.probes[0].seed: unknown field; expected one of epochs, study"),
    ('published = "table9"', 'published = "table10"',
     "reproductions.tiny.published: expected one of table9, got 'table10'"),
    ('report = "table9"', 'report = "table10"',
     "published.table9.report: expected one of table9, fig10, zhang, ioffe, got 'table10'"),
    ('report = "table9"', 'report = "fig10"', "published.table9.rows: the fig10 report takes no "
                                              "rows"),
])
def test_a_malformed_data_file_is_one_line_naming_file_and_field(tmp_path, old, new, message):
    assert old in TINY_PAPER
    folder = _write_paper(tmp_path, TINY_PAPER.replace(old, new))
    with pytest.raises(RegbenchError) as error:
        registry.load(folder)
    assert str(error.value) == f"{folder / 'tiny2020.toml'}: {message}"


def test_a_missing_study_unlisted_paper_or_bad_toml_is_one_line(tmp_path):
    folder = _write_paper(tmp_path, TINY_PAPER.replace('studies = ["tiny_tuning"]',
                                                       'studies = ["nope"]'))
    with pytest.raises(RegbenchError, match=r"^\S+/tiny2020\.toml: reproductions\.tiny\."
                                            r"studies\[0\]: no study file \S+/nope\.toml$"):
        registry.load(folder)
    (folder / "tiny2020.toml").write_text(textwrap.dedent(TINY_PAPER))
    (folder / "other2021.toml").write_text(textwrap.dedent(TINY_PAPER))
    with pytest.raises(RegbenchError) as error:
        registry.load(folder)
    assert str(error.value) == (f"{folder / 'other2021'}.toml: not listed in "
                                f"{folder / 'index.toml'} (papers)")
    (folder / "other2021.toml").unlink()
    (folder / "tiny2020.toml").write_text("title = \n")
    with pytest.raises(RegbenchError) as error:
        registry.load(folder)
    assert str(error.value).startswith(f"{folder / 'tiny2020.toml'}: not valid TOML: ")
    assert "\n" not in str(error.value)


# --- the command line and the pieces of a report ---------------------------------------------

@pytest.mark.slow  # starts the command line in a subprocess
def test_list_names_every_reproduction(regbench_cli, tmp_path):
    result = regbench_cli("reproduce", "--list", cwd=REPO)
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names == list(reproduce.REPRODUCTIONS)
    assert {"srivastava2014_table9", "srivastava2014_fig10_narrow", "zhang2017_table1",
            "ioffe2015_bn_mnist"} <= set(names)


@pytest.mark.slow  # starts the command line in a subprocess
@pytest.mark.parametrize("args, message", [
    (["bogus"], "regbench: error: reproduce: unknown reproduction `bogus`. Valid names: "
                + ", ".join(reproduce.REPRODUCTIONS)),
    ([], "regbench: error: reproduce: give a NAME (see `regbench reproduce --list`)"),
    (["--all"], "regbench: error: --all: only with --report-only and no name"),
    (["--list", "ioffe2015_bn_mnist"], "regbench: error: --list: takes no name and no other "
                                       "option"),
])
def test_bad_input_is_one_line_and_writes_nothing(regbench_cli, tmp_path, args, message):
    result = regbench_cli("reproduce", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == message
    assert list(tmp_path.iterdir()) == []


def _rows(records: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"status": "ok", **r} for r in records])


def test_grid_points_are_chosen_on_validation_accuracy_never_test():
    rows = _rows([
        {"arm": "a", "seed": 100, "val_acc": 0.90, "test_acc": 0.99},
        {"arm": "b", "seed": 100, "val_acc": 0.95, "test_acc": 0.10},
        {"arm": "c", "seed": 100, "val_acc": 0.80, "test_acc": 0.80},
    ])
    grid = (Table9Row("M", 1.0, ("a", "b")), Table9Row("N", 1.0, ("c", "missing")),
            Table9Row("O", 1.0, ("missing",)))
    assert srivastava.chosen_arms(rows, grid) == {"M": "b", "N": "c"}


def test_a_grid_point_is_an_arm_at_a_learning_rate_and_final_rows_at_other_rates_are_left_out():
    rows = _rows([
        {"arm": "a", "learning_rate": 0.01, "val_acc": 0.90, "test_acc": 0.99},
        {"arm": "a", "learning_rate": 0.1, "val_acc": 0.96, "test_acc": 0.10},
        {"arm": "b", "learning_rate": 0.01, "val_acc": 0.95, "test_acc": 0.99},
        {"arm": "b", "learning_rate": 0.1, "val_acc": 0.95, "test_acc": 0.99},  # a tie
    ])
    grid = (Table9Row("M", 1.0, ("a",)), Table9Row("N", 1.0, ("b",)))
    points = srivastava.chosen_points(rows, grid)
    assert points == {"M": ("a", 0.1), "N": ("b", 0.01)}  # the tie to the lower rate
    final = _rows([{"arm": arm, "learning_rate": rate, "seed": 0}
                   for arm in "ab" for rate in (0.01, 0.1)])
    kept = srivastava.at_chosen(final, points)
    assert sorted(zip(kept["arm"], kept["learning_rate"])) == [("a", 0.1), ("b", 0.01)]


def test_steps_to_a_threshold_is_the_first_point_at_or_above_it():
    curve = {"step": [100, 200, 300], "test_acc": [0.90, 0.95, 0.97]}
    assert ioffe.steps_to(curve, 0.95) == 200
    assert ioffe.steps_to(curve, 0.97) == 300
    assert math.isnan(ioffe.steps_to(curve, 0.99))


def test_direction_verdicts_use_the_exact_test_with_holm_as_the_study_reports_do():
    up = common.described([0.2 + 0.01 * i for i in range(8)])   # p = 2/256 at 8 seeds
    down = common.described([-0.2 - 0.01 * i for i in range(8)])
    mixed = common.described([0.3, -0.1, 0.2, -0.2, 0.1, -0.3, 0.25, -0.15])
    assert common.direction_verdicts([(up, 1), (down, 1), (down, -1), (mixed, 1)]) == [
        "reproduced (Holm p 0.0312)",  # 2/256 x 4 claims
        "reversed (Holm p 0.0312)",
        "reproduced (Holm p 0.0312)",
        "not resolved at n = 8; about 2079 seeds would resolve it"]  # mean 0.0125, sd 0.23
    # three seeds: the smallest p is 0.25, so nothing is resolvable, however clear
    three = common.described([0.5, 0.6, 0.7])
    [verdict] = common.direction_verdicts([(three, 1)])
    assert verdict.startswith("not resolvable at n = 3 (the interval excludes 0; no exact "
                              "test at this n can); about ")
    assert common.direction_verdicts([({"n": 0}, 1), (common.described([1.0]), 1)]) == [
        "not yet run", "too few seeds"]


def test_kendall_tau_of_same_and_reversed_orders():
    assert common.kendall([1, 2, 3], [10, 20, 30]).startswith("Kendall's tau = +1.00 over 3")
    assert common.kendall([1, 2, 3], [3, 2, 1]).startswith("Kendall's tau = -1.00 over 3")
    assert "fewer than two rows" in common.kendall([1, 2], [math.nan, 1.0])


TINY_TUNING = """
    name = "tiny_tuning"
    datasets = ["mnist"]
    seeds = [100]
    [model]
    hidden = [16]
    [training]
    optimizer = "sgd"
    learning_rate = 0.1
    lr_decay = 0.9
    momentum_start = 0.5
    momentum = 0.9
    momentum_epochs = 1
    batch_size = 64
    epochs = 2
    train_subset = 256
    [techniques.l2_small]
    type = "l2"
    factor = 1e-5
    [techniques.l2_large]
    type = "l2"
    factor = 1e-1
    [techniques.mn_a]
    type = "max_norm"
    c = 1.0
    [techniques.mn_b]
    type = "max_norm"
    c = 4.0
    [design]
    arms = ["l2_small", "l2_large", "mn_a", "mn_b"]
"""


@pytest.mark.slow  # trains real networks
def test_a_table9_style_reproduction_end_to_end(tmp_path, monkeypatch, data_dir):
    """Tune on seed 100 (validation only), train the chosen points at seeds 0 and 1, report."""
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "tiny_tuning.toml").write_text(textwrap.dedent(TINY_TUNING))
    monkeypatch.setattr(registry, "STUDY_DIR", tmp_path / "studies")
    monkeypatch.setattr(registry, "REPORT_DIR", tmp_path / "out")
    rows = (Table9Row("L2", 1.62, ("l2_small", "l2_large")),
            Table9Row("Max-norm", 1.35, ("mn_a", "mn_b")))
    base = reproduce.get("srivastava2014_table9_narrow")
    tiny = replace(base, name="tiny", studies=("tiny_tuning",),
                   published=replace(base.published, rows=rows), final_seeds=(0, 1), stretch=2,
                   stretch_methods=("Max-norm",))
    monkeypatch.setitem(reproduce.REPRODUCTIONS, "tiny", tiny)
    trained = []

    def trainer(cells, path):
        done = store.finished_keys(path)
        for cell in cells:
            if cell.key not in done:
                store.append(path, engine.fit([cell], str(data_dir))[0])
                trained.append(cell)

    engine.configure()
    out = reproduce.run("tiny", trainer, say=lambda _: None, gpu=False)
    # the grid at seed 100, two chosen points x 2 seeds, the max-norm point stretched x 2 seeds
    assert len(trained) == 4 + 4 + 2
    assert [c.training.epochs for c in trained[-2:]] == [4, 4]
    assert trained[-1].training.learning_rate_at(3) == pytest.approx(
        trained[0].training.learning_rate_at(1))  # the same final learning rate
    results = store.load(out / "results.jsonl")
    tuning = results[results["study"] == "tiny_tuning"]
    final = results[results["study"] == "tiny"]
    assert sorted(final["seed"]) == [0, 0, 1, 1]
    best = {m.method: max(m.grid, key=lambda a: tuning.loc[tuning["arm"] == a, "val_acc"].mean())
            for m in rows}
    assert set(final["arm"]) == set(best.values())
    text = (out / "README.md").read_text()
    assert "| L2 | 1.62 |" in text and "| Max-norm | 1.35 |" in text
    assert "Kendall's tau" in text and "Max-norm has lower error than L2" in text
    assert (out / "figures" / "test_error.png").is_file() and (out / "report.html").is_file()
    assert "## Budget check: the schedule stretched 2x" in text

    trained.clear()  # a second run trains nothing and writes the same report
    reproduce.run("tiny", trainer, say=lambda _: None, gpu=False)
    assert trained == [] and (out / "README.md").read_text() == text


COMMITTED = [name for name in reproduce.REPRODUCTIONS
             if (REPO / registry.store_path(name).parent / "README.md").is_file()]
PROBED_ONLY = [name for name in reproduce.REPRODUCTIONS if name not in COMMITTED
               and (REPO / registry.store_path(name)).is_file()]


@pytest.mark.parametrize("name", PROBED_ONLY)
def test_a_reproduction_with_only_probes_gets_no_report_and_the_index_says_why(
        tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(REPO / "ablations", tmp_path / "ablations")
    folder = registry.store_path(name).parent
    shutil.copytree(REPO / folder, tmp_path / folder)
    (tmp_path / folder / "README.md").write_text("an empty report of an earlier version")
    assert reproduce.write(name) is None
    assert sorted(p.name for p in (tmp_path / folder).iterdir()) == ["results.jsonl"]
    index = (tmp_path / registry.index_path()).read_text()
    line = next(line for line in index.splitlines() if line.startswith(f"| {name} |"))
    assert re.search(r"not run: needs a GPU; its probe estimates \d+ h of training", line)
    assert (tmp_path / registry.index_path()).with_name("index.html").is_file()


@pytest.mark.parametrize("name", COMMITTED)
def test_committed_reports_regenerate_with_published_numbers(tmp_path, monkeypatch, name):
    """Each committed store gives a report with the paper's numbers, budgets and claims: the
    committed report, byte for byte."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(REPO / "ablations", tmp_path / "ablations")
    report = registry.store_path(name).parent
    shutil.copytree(REPO / report, tmp_path / report,
                    ignore=shutil.ignore_patterns("README.md", "report.html", "figures"))
    text = (reproduce.write(name) / "README.md").read_text()
    repro = reproduce.REPRODUCTIONS[name]
    assert re.findall(r"^## .*", text, re.M)[0] == "## Finding"
    assert "## Budget: the paper's and this reproduction's" in text
    for row in repro.published.rows:
        for field in ("error", "train", "test"):
            if hasattr(row, field):
                assert f"| {getattr(row, field):.2f} |" in text
    for setting, value in repro.published.budget.items():
        assert f"| {setting} | {value} |" in text
    assert f"regbench reproduce {name}" in text
    assert text == (REPO / report / "README.md").read_text()


@pytest.mark.parametrize("name", COMMITTED)
def test_a_committed_finding_compares_with_the_paper(name):
    """The finding (the first section) holds the claims' table and how the rows' order
    agrees with the paper's, or why there is nothing to rank: a figure without values."""
    text = (REPO / registry.store_path(name).parent / "README.md").read_text()
    start = text.index("\n## Finding\n")
    finding = text[start:text.index("\n## ", start + 1)]
    assert "| claim |" in finding and "| verdict |" in finding
    ranks = re.search(r"Ranking agreement with the paper[^:]*: Kendall's tau = [-+]\d\.\d\d "
                      r"over \d+ rows", finding)
    if "| paper |" in finding:  # the paper gives numbers: their order against ours
        assert ranks, name
    else:
        assert not ranks and "No paper column and no ranking agreement" in finding, name
