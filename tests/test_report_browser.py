"""The demo report: the spring 2026 picture, rendered in real headless Chromium.

Chromium comes from Debian's ``chromium`` package (``make test`` installs it when
missing). The test fails, not skips, without it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT
from warnd.config import load_config
from warnd.pipeline import Pipeline
from warnd.report.render import render_html, render_markdown
from warnd.report.tables import build_report
from warnd.store import Store

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
]

# Appended to a copy of the page only: after load, write what the browser sees into the DOM.
CHECK_SCRIPT = """<script>
window.addEventListener("load", function () {
  var out = {images: [], tables: []};
  document.querySelectorAll("img").forEach(function (i) {
    var r = i.getBoundingClientRect();
    out.images.push({natural: i.naturalWidth, complete: i.complete, width: r.width,
                     height: r.height});
  });
  document.querySelectorAll("table").forEach(function (t) {
    var r = t.getBoundingClientRect();
    out.tables.push({rows: t.rows.length, width: r.width, height: r.height});
  });
  // the lines each number in a table takes ("2 479", "3,3 %": one, not broken)
  out.numberLines = [];
  document.querySelectorAll("td.num:not(.words)").forEach(function (td) {
    if (!td.textContent.trim()) return;
    var range = document.createRange();
    range.selectNodeContents(td);
    var tops = {};
    Array.prototype.forEach.call(range.getClientRects(), function (r) {
      tops[Math.round(r.top)] = true;
    });
    out.numberLines.push([td.textContent, Object.keys(tops).length]);
  });
  var pre = document.createElement("pre");
  pre.id = "warnd-check";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def chromium() -> str:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("chromium is not installed: run `make test` (it installs Debian's "
                    "chromium package) or `apt-get install chromium`")
    return exe


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    state = tmp_path_factory.mktemp("demo-state")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WARND_STATE_DIR", str(state))
        cfg = load_config(ROOT / "config.toml")
        Pipeline(cfg).run_once()
        store = Store.in_dir(cfg.state_dir)
        try:
            return cfg, build_report(store, cfg)
        finally:
            store.close()


def test_demo_report_reproduces_the_spring_2026_findings(demo_report):
    _, rep = demo_report
    assert [str(p) for p in rep.current] == ["2025-10-01", "2026-03-31"]
    by = {t.substance: t for t in rep.substances}
    assert set(by) == {"heroin", "kokain", "ketamin", "xanor"}
    for sub in ("kokain", "ketamin"):
        assert by[sub].dimension_verdicts["use"].category == 2
        assert by[sub].headline("en").endswith("strong increase in use")
        assert by[sub].aggregate.by_dimension["use"] > 20
        assert by[sub].alerts, f"{sub}: the period's alert is listed"
        assert by[sub].notices, f"{sub}: overdosefare warnings are listed"
    for sub in ("heroin", "xanor"):
        assert by[sub].dimension_verdicts["use"].category == 0
        assert by[sub].headline("no").split("\N{EN DASH} ", 1)[1].startswith("stabil bruk")
        assert abs(by[sub].aggregate.by_dimension["use"]) < 10 and not by[sub].alerts


def test_the_sample_report_in_the_docs_is_what_the_demo_data_give(demo_report):
    """docs/sample-report.md is the Markdown report of the demo data as the code makes it
    now (but for the day it was made and the day revisions were read): regenerate it as
    its first line says when a change to detection or the report moves a number."""
    _, rep = demo_report
    sample = (ROOT / "docs" / "sample-report.md").read_text(encoding="utf-8")
    comment, body = sample.split("\n", 1)
    assert comment.startswith("<!-- Generated from the demo data")

    def days(text: str) -> str:
        return re.sub(r"\b20\d\d-\d\d-\d\d\b(?=\.|\\\))", "DAY", text)

    made = render_markdown(rep, "no", generated=rep.current[1])
    assert days(body.strip()) == days(made.strip())


def test_html_report_renders_in_headless_chromium(demo_report, tmp_path):
    exe = chromium()
    cfg, rep = demo_report
    page = render_html(rep, "no", params=cfg.detection_params(""))
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", CHECK_SCRIPT + "</body>"), encoding="utf-8")
    report = tmp_path / "report.html"
    report.write_text(page, encoding="utf-8")

    dom = subprocess.run(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile-dom'}",
         "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=180, check=False,
    )
    m = re.search(r'<pre id="warnd-check">(.*?)</pre>', dom.stdout, re.S)
    assert m, f"no check output from chromium: {dom.stderr[-2000:]}"
    seen = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    # 4 long-term charts + 4 per-source charts, all decoded and laid out
    assert len(seen["images"]) == 2 * len(rep.substances) == 8
    for img in seen["images"]:
        assert img["complete"] and img["natural"] > 300, img
        assert img["width"] > 300 and img["height"] > 100, img
    # per substance: the summary (3 dimensions + total) and the source table
    assert len(seen["tables"]) == 2 * len(rep.substances)
    for tab in seen["tables"]:
        assert tab["rows"] >= 5 and tab["width"] > 200 and tab["height"] > 80, tab
    # every number on one line (before, "2 479" and "3,3 %" broke at their spaces)
    assert any(" " in text for text, _ in seen["numberLines"])
    assert [(t, n) for t, n in seen["numberLines"] if n != 1] == []

    shot = tmp_path / "shot.png"
    subprocess.run(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile-shot'}",
         f"--screenshot={shot}", "--window-size=1280,4000", report.as_uri()],
        capture_output=True, text=True, timeout=180, check=False,
    )
    assert shot.exists(), "chromium wrote no screenshot"
    px = np.asarray(Image.open(shot).convert("RGB"), dtype=int)
    assert px.shape == (4000, 1280, 3)
    ink = (px.sum(axis=2) < 600).mean()  # anything clearly darker than white
    assert ink > 0.02, f"screenshot is (nearly) blank: {ink:.4f} of pixels inked"
    # the charts' dimension colours reached the screen (the use line is #1f5f99)
    blue = (abs(px[..., 0] - 0x1F) < 30) & (abs(px[..., 1] - 0x5F) < 30) & (
        abs(px[..., 2] - 0x99) < 30)
    assert blue.sum() > 500


# Appended to a copy of the page only: after load, write the text the browser shows.
TEXT_SCRIPT = """<script>
window.addEventListener("load", function () {
  var pre = document.createElement("pre");
  pre.id = "warnd-text";
  pre.textContent = document.body.innerText;
  document.body.appendChild(pre);
});
</script>"""


def test_a_report_of_a_half_year_not_over_shows_it_in_chromium(tmp_path, capsys):
    """The October–March report made in October 2025 (``warnd report --format html``),
    with a rise told in the half-year before still going on, shown by headless Chromium:
    the page says the period is not over and how far the data run, in the header, over
    the findings and over the table, and lists the rise as going on from the half-year
    before."""
    from tests.test_stream_report_alerts import _rise_through_the_autumn

    args = "--format html --lang no --from 2025-10-01"
    _, out = _rise_through_the_autumn(tmp_path, capsys, range(106, 125), {124: [args]})
    probe = tmp_path / "probe.html"
    probe.write_text(out[124, args].replace("</body>", TEXT_SCRIPT + "</body>"),
                     encoding="utf-8")
    dom = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=180, check=False,
    )
    m = re.search(r'<pre id="warnd-text">(.*?)</pre>', dom.stdout, re.S)
    assert m, f"no text from chromium: {dom.stderr[-2000:]}"
    shown = m.group(1)
    assert shown.count("Perioden er ikke over: data til og med 2025-10-26.") == 3, shown
    assert re.search(r"#\d+ 2025-07-21 \[info\] .*\(pågår fra forrige periode\)\n", shown), shown
