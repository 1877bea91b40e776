"""Every committed report page in a real browser (headless Chromium, 1280 px wide): its images
decode, it does not scroll sideways, no table overflows its width, and every link of its table
of contents has a target. A control page with one fault of each kind shows that the probe sees
them. Without Chromium these tests are skipped, unless REGBENCH_REQUIRE_BROWSER is set (CI)."""

from __future__ import annotations

import os

import pytest
from browser import REPO, check, chromium, pages

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium() is None and not os.environ.get("REGBENCH_REQUIRE_BROWSER"),
                       reason="chromium not installed (apt-get install -y chromium)"),
]
PAGES = pages()


def test_every_report_has_its_page():
    """Study reports, reproductions, the claims and the step benchmarks have report.html
    beside README.md; the indexes index.html."""
    reports = {p.parent for p in REPO.glob("reports/**/results.jsonl")
               if (p.parent / "README.md").is_file()} | {REPO / "reports" / "claims",
                                                          REPO / "reports" / "benchmarks"}
    indexes = {REPO / "reports", REPO / "reports" / "published"}
    assert len(reports) >= 9
    assert {p.parent for p in PAGES if p.name == "report.html"} == reports
    assert {p.parent for p in PAGES if p.name == "index.html"} == indexes


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO / "reports")))
def test_a_committed_page_reads_well_at_1280_px(page):
    seen = check(page)
    assert seen["decoded"] == seen["images"]
    assert seen["scroll"] <= 0, f"scrolls {seen['scroll']} px sideways"
    assert seen["wide_tables"] == 0
    assert seen["missing_anchors"] == []
    if page.name == "report.html":
        assert seen["contents"] >= 3  # a table of contents, at the top


def test_the_probe_sees_each_kind_of_fault():
    faulty = ('<!DOCTYPE html><html><body><nav class="toc"><a href="#here">here</a>'
              '<a href="#nowhere">nowhere</a></nav><h2 id="here">here</h2>'
              '<img src="data:image/png;base64,AAAA">'
              '<div class="scroll" style="overflow-x:auto"><table><tr><td style="'
              'white-space:nowrap">' + "wide " * 400 + "</td></tr></table></div>"
              '<div style="width:3000px">wide</div></body></html>')
    seen = check(PAGES[0], faulty)
    assert seen == {"images": 1, "decoded": 0, "scroll": 3000 - 1280 + 8, "wide_tables": 1,
                    "missing_anchors": ["nowhere"], "contents": 2}
