"""regbench.report and regbench.claims on synthetic stores with planted effects: files, tables,
numbers, determinism, failed cells, the CLI commands, and the HTML in a real headless browser."""

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_rows import factorial_rows, row, tutorial_rows, write

from regbench import claims, cli, document, report, report_index
from regbench.errors import RegbenchError

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tutorial_store(tmp_path_factory):
    """The tutorial's 9 arms × 5 seeds, plus one failed and one diverged cell."""
    path = tmp_path_factory.mktemp("store") / "results.jsonl"
    rows = tutorial_rows(seeds=range(5))
    rows.append(row("dropout", 5, study="mnist_tutorial", status="failed"))
    rows.append(row("l1", 5, study="mnist_tutorial", status="diverged"))
    return write(path, rows)


# The tutorial's whole report (9 arms x 6 seeds, 7 figures) takes several seconds to write:
# the tests that read it are marked slow.
@pytest.fixture(scope="module")
def written(tutorial_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "mnist_tutorial"
    report.write_report(tutorial_store, out)
    return out


def images(html: str) -> list[str]:
    return re.findall(r'<img [^>]*src="([^"]*)"', html)


@pytest.mark.slow
def test_report_writes_markdown_html_figures_and_csv(written):
    readme = (written / "README.md").read_text()
    headings = ["# Report: mnist_tutorial", "## Finding", "## Per arm",
                "## Paired comparisons with `none`", "## Figures", "## Cells not ok",
                "## Reproducibility", "### Selection rule"]
    places = [readme.index(f"\n{heading}\n") for heading in headings[1:]]
    assert readme.startswith(headings[0]) and places == sorted(places)  # the finding first
    figures = sorted(p.name for p in (written / "figures").glob("*.png"))
    assert figures == ["accuracy_curves.png", "cost.png", "gap.png", "learning_curves.png",
                       "paired_differences.png", "sparsity.png", "test_accuracy.png",
                       "weight_magnitudes.png"]
    assert sorted(re.findall(r"\]\(figures/([^)]+)\)", readme)) == figures
    assert {"arm", "metric", "n", "mean", "std", "ci_low", "ci_high"} <= set(
        pd.read_csv(written / "arms.csv").columns)
    assert set(pd.read_csv(written / "comparisons.csv")["metric"]) == {
        "test_acc", "gap_acc", "test_xent", "gap_xent"}


@pytest.mark.slow
def test_arm_statistics_are_those_of_the_stored_rows(written):
    """arms.csv against the rows themselves: mean, sample std and the Student-t interval
    (t(0.975, 4) = 2.776445) of the five `ok` seeds of one arm."""
    rows = [r for r in tutorial_rows(seeds=range(5)) if r["arm"] == "dropout"]
    values = np.array([r["test_acc"] for r in rows])
    mean, std = values.sum() / 5, np.sqrt(((values - values.sum() / 5) ** 2).sum() / 4)
    half = 2.7764451051977987 * std / np.sqrt(5)
    arms = pd.read_csv(written / "arms.csv").set_index(["arm", "metric"])
    got = arms.loc[("dropout", "test_acc")]
    assert got["n"] == 5  # the failed sixth seed is left out
    assert [got["mean"], got["std"], got["ci_low"], got["ci_high"]] == pytest.approx(
        [mean, std, mean - half, mean + half], rel=1e-5)  # the CSV keeps 6 digits


@pytest.mark.slow
def test_html_is_self_contained(written):
    html = (written / "report.html").read_text()
    srcs = images(html)
    assert len(srcs) == 8
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<link" not in html and "<script" not in html
    assert "<table>" in html and "<code>none</code>" in html


@pytest.mark.slow
def test_tables_report_every_arm_with_counts_ci_and_provenance(written):
    readme = (written / "README.md").read_text()
    none = next(line for line in readme.splitlines() if line.startswith("| none | 5 |"))
    assert re.search(r"\| 0\.97\d\d ± 0\.000\d \| \[0\.97\d\d, 0\.97\d\d\] \|", none)
    assert "| dropout | 5 | 1 failed |" in readme and "| l1 | 5 | 1 diverged |" in readme
    assert "| dropout | failed | 5 | `ValueError: synthetic failure` |" in readme
    assert "| l1 | diverged | 5 | at epoch 3 |" in readme
    assert "2 of 47 cells are not `ok` (1 failed, 1 diverged)" in readme
    # reproducibility: hashes, versions, hardware, seeds, compute, both commands
    assert f"| mnist | x_train | `{'a' * 64}` |" in readme
    assert "| keras_version | 3.15.1 |" in readme and "| device | CPU: test |" in readme
    assert "Seeds: 0, 1, 2, 3, 4, 5 (6)." in readme
    assert "Total compute:" in readme and "regbench run ablations/mnist_tutorial.toml" in readme
    assert re.search(r"regbench report \S+results\.jsonl --out \S+mnist_tutorial", readme)
    assert "the test set is evaluated once" in readme


@pytest.mark.slow
def test_resolution_limit_is_stated_with_numbers(written):
    readme = (written / "README.md").read_text()
    assert ("With n = 5 paired seeds the permutation test has 2^5 = 32 equally likely sign "
            "patterns, so the smallest two-sided p it can give is 2/2^5 = 0.0625") in readme
    assert "after Holm over 8 arms at least 0.5000" in readme
    assert "Resolving every arm needs at least 9 seeds" in readme
    assert "| augmentation | 5 | -0.0473 |" in readme


@pytest.mark.slow
def test_regenerating_gives_identical_tables_and_figures(tutorial_store, written):
    names = ["README.md", "arms.csv", "comparisons.csv", "report.html",
             *(f"figures/{png.name}" for png in sorted((written / "figures").glob("*.png")))]
    before = {name: (written / name).read_bytes() for name in names}
    import numpy as np

    np.random.seed(12345)  # whatever the global generator's state, the figures are the same
    report.write_report(tutorial_store, written)
    assert {name: (written / name).read_bytes() for name in names} == before


def test_paired_comparison_by_hand():
    # differences 0.01..0.05 at seeds 0..4: mean 0.03, every seed positive, p = 2/32
    rows = pd.DataFrame([row(arm, s, noise=0, test_acc=0.9 + (0.01 * (s + 1) if arm == "x"
                                                              else 0.0))
                         for s in range(5) for arm in ("none", "x")])
    table = report.paired_comparisons(rows, "test_acc", True, "none")
    r = table.iloc[0]
    assert (r.arm, r.n_pairs, r.seeds_agreeing, r.verdict) == ("x", 5, 5, "indistinguishable")
    assert r.mean_diff == pytest.approx(0.03)
    assert r.p == pytest.approx(1 / 16) and r.p_holm == pytest.approx(1 / 16)
    # 0.01..0.05: sd 0.0158; t(0.975, 4) = 2.7764 (tables): 0.03 -+ 0.0196
    assert (r.ci_low, r.ci_high) == pytest.approx((0.0104, 0.0496), abs=1e-4)
    # a sixth seed makes the floor 2/64 < 0.05: now resolvable
    rows6 = pd.concat([rows, pd.DataFrame([row("none", 5, noise=0, test_acc=0.9),
                                           row("x", 5, noise=0, test_acc=0.96)])])
    assert report.paired_comparisons(rows6, "test_acc", True, "none").iloc[0].verdict == "better"
    assert report.paired_comparisons(rows6, "test_acc", False, "none").iloc[0].verdict == "worse"


def test_factorial_effects_in_the_report(tmp_path):
    rows = factorial_rows({"a": 0.01, "b": 0.02}, interaction=0.005)
    effects = report.design_effects(pd.DataFrame(rows), "test_acc").set_index("effect")
    # a: (0.01 + 0.035)/2 - (0 + 0.02)/2; b: (0.02 + 0.035)/2 - (0 + 0.01)/2;
    # a×b: (0 + 0.035)/2 - (0.01 + 0.02)/2
    assert effects["mean"].to_dict() == pytest.approx({"a": 0.0125, "b": 0.0225,
                                                       "a×b": 0.0025})
    assert list(effects["n_seeds"]) == [3, 3, 3]
    report.write_report(write(tmp_path / "f.jsonl", rows), tmp_path / "out")
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "Design: factorial" in readme and "## Technique effects" in readme
    assert "| a×b | 3 | +0.0025 |" in readme


def test_leave_one_out_effects_are_reported_without_interactions():
    rows = [row(arm, s, noise=0, test_acc=acc) for s in range(3) for arm, acc in
            (("a+b+c", 0.95), ("b+c", 0.92), ("a+c", 0.94), ("a+b", 0.945))]
    effects = report.design_effects(pd.DataFrame(rows), "test_acc").set_index("effect")
    assert effects["mean"].to_dict() == pytest.approx({"a": 0.03, "b": 0.01, "c": 0.005})


def test_a_store_of_failed_cells_still_reports(tmp_path):
    path = write(tmp_path / "r.jsonl", [row(a, s, status="failed") for s in range(2)
                                        for a in ("none", "l1")])
    report.write_report(path, tmp_path / "out")
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "No `ok` cells: no figures." in readme
    assert "4 of 4 cells are not `ok` (4 failed)" in readme


def test_multiple_problems_get_a_section_each(tmp_path):
    rows = [row("none", s, noise=0) for s in range(2)]
    rows += [row("none", s, noise=0, epochs=3) for s in range(2)]
    report.write_report(write(tmp_path / "r.jsonl", rows), tmp_path / "out")
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "## mnist_mlp, epochs=20" in readme and "## mnist_mlp, epochs=3" in readme
    assert (tmp_path / "out" / "figures" / "mnist_mlp_epochs_3_test_accuracy.png").is_file()


# --- claims ----------------------------------------------------------------------------------

EXPECTED_VERDICTS = {
    1: "partly supported",              # gaps shrink, but most arms lose test accuracy
    2: "partly supported",              # no exact zeros; near-zero weights and pixels: yes
    3: "supported in direction",        # smaller norm in every seed; no exact zeros
    4: "supported in direction",
    5: "supported in direction",        # stops 5 epochs after its best; better test results
    6: "contradicted in direction",     # dropout: a smaller gap, lower test accuracy
    7: "contradicted in direction",     # augmentation loses accuracy in every seed
    8: "partly supported",              # epochs to the target: no consistent effect
    9: "contradicted in direction",     # the combination loses to each part
}


def verdicts(rows) -> dict:
    found, _ = claims.evaluate(pd.DataFrame(rows))
    return {c.number: c.verdict for c in found}


def test_claims_verdicts_are_computed_from_the_data():
    assert verdicts(tutorial_rows()) == EXPECTED_VERDICTS


def test_claims_verdicts_follow_the_data_when_it_changes():
    changed = verdicts(tutorial_rows(overrides={
        "l1": {"sparsity_zero": 0.05}, "augmentation": {"test_acc": 0.98, "train_xent": 0.01}}))
    assert changed[2] == "supported in direction"
    assert changed[7] == "supported in direction"


def test_claims_reach_significance_with_enough_seeds():
    found, evidence = claims.evaluate(pd.DataFrame(tutorial_rows(seeds=range(12))))
    assert len(evidence.tests) == 41
    by_number = {c.number: c for c in found}
    assert by_number[6].verdict == "contradicted"  # 2/4096 * 41 < 0.05
    assert by_number[6].parts[0].level == "underfitting"
    assert by_number[7].verdict == "contradicted"


def test_claim_parts_need_two_seeds():
    rows = tutorial_rows(seeds=[0])
    assert verdicts(rows)[6] == "one seed only"
    rows = [r for r in tutorial_rows(seeds=[0, 1]) if r["arm"] != "dropout"]
    assert verdicts(rows)[6] == "no data"


def test_write_claims(tutorial_store, tmp_path):
    claims.write_claims(tutorial_store, tmp_path)
    readme = (tmp_path / "README.md").read_text()
    assert "| 7 | data augmentation improves generalization | **contradicted in direction** |" \
        in readme
    assert "`l1`: weights exactly 0 per seed: 0, 0, 0, 0, 0 of 50816" in readme
    assert "Significance here needs at least 11 seeds." in readme
    data = json.loads((tmp_path / "claims.json").read_text())
    assert [c["verdict"] for c in data["strengths"]["the tutorial's strengths"]] == list(
        EXPECTED_VERDICTS.values())
    assert len(images((tmp_path / "report.html").read_text())) == 2


def test_claims_need_a_none_arm(tmp_path):
    path = write(tmp_path / "r.jsonl", [row("l1", 0)])
    with pytest.raises(RegbenchError, match=r"no `none` arm; the claims are tested against"):
        claims.write_claims(path, tmp_path / "out")


# --- command line ----------------------------------------------------------------------------

def run_cli(*argv) -> int:
    args = cli.build_parser().parse_args([str(a) for a in argv])
    return args.func(args)


@pytest.mark.slow  # a report and the claims of the tutorial store
def test_cli_report_and_claims(tutorial_store, tmp_path, capsys):
    small = write(tmp_path / "small.jsonl", [row(a, s) for s in range(2) for a in ("none", "l1")])
    assert run_cli("report", small, "--out", tmp_path / "r") == 0
    assert (tmp_path / "r" / "report.html").is_file()
    assert run_cli("claims", tutorial_store, "--out", tmp_path / "c") == 0
    assert (tmp_path / "c" / "claims.json").is_file()
    assert "report.html" in capsys.readouterr().out


def test_cli_report_of_a_folder_regenerates_every_report_and_the_index(tmp_path):
    root = tmp_path / "reports"
    (root / "mnist_tutorial").mkdir(parents=True)
    write(root / "mnist_tutorial" / "results.jsonl",
          [row(a, s, study="mnist_tutorial", test_acc=acc) for s in range(2)
           for a, acc in (("none", 0.97), ("augmentation", 0.93))])
    (root / "mnist_tutorial" / "FINDINGS.md").write_text("Dropout halves the gap.\n")
    assert run_cli("claims", root / "mnist_tutorial" / "results.jsonl", "--out",
                   root / "claims") == 0
    assert run_cli("report", root) == 0
    assert (root / "mnist_tutorial" / "report.html").is_file()
    index = (root / "README.md").read_text()
    assert "[report](mnist_tutorial/README.md)" in index  # Markdown links Markdown,
    assert '<a href="mnist_tutorial/report.html">report</a>' in (root / "index.html").read_text()
    assert "best mean test accuracy `none` 0.97" in index and "at n = 2 seeds" in index
    assert "**Findings.** Dropout halves the gap." in index
    assert ("Claim 7, data augmentation improves generalization: **contradicted in direction**"
            in index)
    assert "Claim 6, dropout prevents overfitting: **no data**" in index


def test_the_index_links_each_other_report_by_the_page_it_has(tmp_path):
    root = tmp_path / "reports"
    for name, pages in (("benchmarks", ("README.md", "report.html")), ("notes", ("README.md",)),
                        ("published", ("README.md", "index.html"))):
        (root / name).mkdir(parents=True)
        for page in pages:
            (root / name / page).write_text("a report")
    html = document.render_html(report_index.index_blocks(root, "report.html"), "t")
    assert ('<a href="benchmarks/report.html">benchmarks</a>' in html  # its HTML page,
            and '<a href="notes/README.md">notes</a>' in html  # Markdown where that is all,
            and '<a href="published/index.html">published</a>' in html)  # an index's index
    markdown = document.render_markdown(report_index.index_blocks(root, "README.md"))
    assert "[benchmarks](benchmarks/README.md)" in markdown


def test_cli_errors_are_one_line(tmp_path):
    with pytest.raises(RegbenchError, match=r"^\S*missing\.jsonl: no such results file$"):
        run_cli("report", tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(RegbenchError, match=r"empty\.jsonl: no result rows$"):
        run_cli("report", tmp_path / "empty.jsonl")
    with pytest.raises(RegbenchError, match=r"no <study>/results\.jsonl under this folder$"):
        run_cli("report", tmp_path)


# --- a real browser --------------------------------------------------------------------------

PROBE = """<script>
window.addEventListener("load", () => {
  const all = [...document.images];
  const ok = all.filter(i => i.complete && i.naturalWidth > 0).length;
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = `decoded ${ok} of ${all.length}`;
  document.body.appendChild(out);
});
</script>"""
BROKEN = '<img alt="control" src="data:image/png;base64,AAAA">'


@pytest.mark.slow  # the tutorial's report, then a browser process
@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="chromium not installed (apt-get install -y chromium)")
def test_html_report_loads_offline_in_headless_chromium(written, tmp_path):
    html = (written / "report.html").read_text()
    n = len(images(html))
    # a copy with a probe that writes the decode count into the DOM, and one broken image
    # as a control that the probe can see a failure
    page = tmp_path / "page.html"
    page.write_text(html.replace("</body>", BROKEN + PROBE + "</body>"))
    dom = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120).stdout
    assert '<h1 id="report-mnist_tutorial">Report: mnist_tutorial</h1>' in dom
    assert f'<pre id="probe">decoded {n} of {n + 1}</pre>' in dom


def test_every_committed_report_opens_on_its_finding():
    """Study reports, reproductions and the claims: the first section after the title block is
    the finding, and the hand-written findings sit inside it."""
    repo = Path(__file__).resolve().parents[1]
    pages = sorted(p for p in (repo / "reports").glob("**/README.md")
                   if (p.parent / "report.html").is_file())
    assert len(pages) >= 9
    for page in pages:
        text = page.read_text()
        sections = re.findall(r"^## .*", text, re.M)
        assert sections[0] == "## Finding", page
        if (page.parent / "FINDINGS.md").is_file():
            assert text.index("### Findings, written by hand") < text.index(sections[1]), page


@pytest.mark.slow
def test_a_tuned_store_reports_the_choice_the_grid_and_the_paths(tmp_path):
    from report_rows import tuned_rows
    results = write(tmp_path / "results.jsonl",
                    tuned_rows({"l2": "l2@0.0001", "dropout": "dropout@0.1"}))
    report.write_report(results, tmp_path / "out")
    text = (tmp_path / "out" / "README.md").read_text()
    finding = text[text.index("## Finding"):text.index("**Contents**")]
    assert "tuning seeds 100-102" in finding and "final seeds 0-3" in finding
    assert "Chosen: `l2@0.0001`, `dropout@0.1`." in finding
    # the comparison reads the final cells only: l2 against none at seeds 0-3
    assert re.search(r"\| l2 \| \+0\.\d\d \|", finding)
    assert "l2@1e-05" not in finding
    tuning = text[text.index("## Tuning on the validation split"):]
    assert "lowest mean validation cross-entropy" in tuning
    table = tuning[tuning.index("### `l2`"):tuning.index("### `dropout`")]
    assert [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| `")] == [
        "| `l2@1e-05`", "| `l2@0.0001`", "| `l2@0.01`"]
    assert "| `l2@0.0001` | 3 |" in table and table.count("**chosen**") == 1
    assert "![" in tuning and (tmp_path / "out/figures/paths.png").is_file()
    assert set(pd.read_csv(tmp_path / "out/tuning.csv")["arm"]) == {
        "none", "l2@1e-05", "l2@0.0001", "l2@0.01", "dropout@0.1", "dropout@0.5"}
    arms = pd.read_csv(tmp_path / "out/arms.csv")
    assert set(arms["arm"]) == {"dropout", "l2", "none"}
    # while the tuning runs: its grids so far, in their values' order
    early = write(tmp_path / "early.jsonl", [r for r in tuned_rows({}) if r["role"] == "tuning"])
    report.write_report(early, tmp_path / "early")
    text = (tmp_path / "early" / "README.md").read_text()
    assert "No final cell is stored yet: 18 tuning cells so far." in text
    assert text.index("| `l2@1e-05`") < text.index("| `l2@0.0001`") < text.index("| `l2@0.01`")


UNRESOLVED = re.compile(r"not resolv|indistinguishable|no consistent|in direction|includes 0")
INTERVAL = re.compile(r"\[([+-]?[\d.]+(?:e[+-]?\d+)?), ([+-]?[\d.]+(?:e[+-]?\d+)?)\]")


def verdict_rows(text: str):
    """(row cells, verdict cell) of every Markdown table with a `verdict` column."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("| ") or i + 1 >= len(lines) or not lines[i + 1].startswith("|---"):
            continue
        header = [c.strip() for c in line.strip("|").split(" | ")]
        if "verdict" not in header:
            continue
        column = header.index("verdict")
        for line_ in lines[i + 2:]:
            if not line_.startswith("| "):
                break
            cells = [c.strip() for c in line_.strip("|").split(" | ")]
            yield cells, cells[column]


def test_no_committed_interval_that_excludes_0_sits_beside_an_unresolved_verdict_unsaid():
    repo = Path(__file__).resolve().parents[1]
    checked = 0
    for page in sorted((repo / "reports").glob("**/README.md")):
        for cells, verdict in verdict_rows(page.read_text()):
            for cell in cells:
                for low, high in INTERVAL.findall(cell):
                    checked += 1
                    if (float(low) > 0 or float(high) < 0) and UNRESOLVED.search(verdict):
                        assert "excludes 0" in verdict, (page, cells)
    assert checked > 100


def test_the_check_sees_an_interval_that_contradicts_its_verdict():
    table = ("| arm | 95% CI | verdict |\n|---|---|---|\n"
             "| a | [+0.01, +0.20] | not resolved at n = 12 |\n")
    [(cells, verdict)] = verdict_rows(table)
    low, high = INTERVAL.findall(cells[1])[0]
    assert float(low) > 0 and UNRESOLVED.search(verdict) and "excludes 0" not in verdict
