"""Committed report pages, opened in headless Chromium at 1280 px wide: what a reader's browser
shows. `check(page)` loads a copy of a page with a probe script that writes into the DOM how
many images decoded, how far the page scrolls sideways, which tables overflow their width and
which table-of-contents links have no target; `python tests/browser.py OUT` writes a screenshot
of the first screen of each committed report into OUT, for review (`nox -s reports`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 1280, 900
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const wide = [...document.querySelectorAll("div.scroll")]
    .filter(d => d.scrollWidth > d.clientWidth + 1).length;
  const missing = [...document.querySelectorAll('a[href^="#"]')]
    .map(a => a.getAttribute("href").slice(1))
    .filter(id => !document.getElementById(decodeURIComponent(id)));
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({
    images: images.length,
    decoded: images.filter(i => i.complete && i.naturalWidth > 0).length,
    scroll: document.documentElement.scrollWidth - window.innerWidth,
    wide_tables: wide, missing_anchors: missing,
    contents: document.querySelectorAll("nav.toc a").length});
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def pages() -> list[Path]:
    """Every committed HTML report and index."""
    return sorted([*REPO.glob("reports/**/report.html"), *REPO.glob("reports/**/index.html")])


def _browser(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}",
         "--virtual-time-budget=10000", *args],
        capture_output=True, text=True, timeout=120)


def check(page: Path, html: str | None = None) -> dict:
    """What the probe saw on `page` (or on `html`, written in its place)."""
    with tempfile.TemporaryDirectory() as work:
        copy = Path(work) / "page.html"
        text = page.read_text() if html is None else html
        copy.write_text(text.replace("</body>", PROBE + "</body>"))
        dom = _browser(["--dump-dom", copy.as_uri()], Path(work) / "profile").stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    if not found:
        raise AssertionError(f"{page}: the probe did not run; the browser printed {dom[:200]!r}")
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def screenshots(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as work:
        for page in pages():
            name = "_".join(page.relative_to(REPO / "reports").with_suffix("").parts) + ".png"
            _browser([f"--screenshot={out / name}", page.as_uri()], Path(work) / "profile")
            written.append(out / name)
    return written


if __name__ == "__main__":
    if chromium() is None:
        sys.exit("chromium not installed (apt-get install -y chromium); no screenshots")
    for path in screenshots(Path(sys.argv[1] if len(sys.argv) > 1 else "screenshots")):
        print(path)
