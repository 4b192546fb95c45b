"""The HTML report in a real browser (Debian's headless Chromium): the finding, the leaderboard and
the significance matrix on the first screen, every plot rendered, no script or network, and a
printout. Built from the committed synthetic reference records."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import pytest
from conftest import ROOT
from PIL import Image

from lmbench.plots import KIND_COLOURS
from lmbench.report import build

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium): the HTML "
    "report is not checked in a browser")]
WINDOW = (1280, 900)  # the first screen of a laptop browser

# Added to a copy of the report (the report itself has no script): measures what the browser laid out.
PROBE = """<script>
addEventListener('load', () => {
  const box = el => { if (!el) return null; const r = el.getBoundingClientRect(), s = getComputedStyle(el);
    return {top: r.top, bottom: r.bottom, width: r.width, height: r.height,
            shown: s.display !== 'none' && s.visibility !== 'hidden' && r.width > 0 && r.height > 0}; };
  const cell = document.querySelector('table.matrix td.better');
  const out = {viewport: innerHeight, findings: box(document.querySelector('#findings')),
    findingsText: document.querySelector('#findings').innerText,
    leaderboard: box(document.querySelector('table.leaderboard')),
    matrix: box(document.querySelector('table.matrix')),
    betterColour: cell && getComputedStyle(cell).backgroundColor,
    images: [...document.images].map(i => ({alt: i.alt, loaded: i.complete && i.naturalWidth > 0,
                                            ...box(i)}))};
  const pre = document.createElement('pre');
  pre.id = 'measured';
  pre.textContent = JSON.stringify(out);
  document.body.append(pre);
});
</script>"""


def chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium with a fresh profile and nothing reaching the network."""
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
         f"--window-size={WINDOW[0]},{WINDOW[1]}", *args],
        capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    build(ROOT / "results" / "reference" / "synthetic", out)
    return out


def _rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def test_the_first_screen_shows_the_finding_the_leaderboard_and_the_matrix_and_every_plot_renders(
        report, tmp_path):
    page = (report / "report.html").read_text()
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)=['"]?(https?:)?//""", page), "nothing may load from the network"
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"))
    done = chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probed.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="measured">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stdout[-2000:]
    seen = json.loads(html.unescape(found.group(1)))

    assert 600 <= seen["viewport"] <= WINDOW[1]  # the window less the browser's own bars
    assert seen["findings"]["shown"] and seen["findings"]["bottom"] <= seen["viewport"]
    text = seen["findingsText"]
    assert "gru is best" in text and "lower perplexity than lstm" in text and "not significant" in text
    assert seen["leaderboard"]["shown"] and seen["leaderboard"]["top"] < seen["viewport"]
    assert seen["matrix"]["shown"] and seen["matrix"]["width"] > 400
    assert seen["betterColour"] == _rgb(KIND_COLOURS["better"])
    assert len(seen["images"]) == 3  # tradeoffs, learning curves, n-gram storage
    for image in seen["images"]:
        assert image["loaded"] and image["shown"] and image["width"] > 600, image


def test_a_screenshot_of_the_first_screen_and_a_printout(report, tmp_path):
    shot, pdf = tmp_path / "first_screen.png", tmp_path / "report.pdf"
    done = chromium(tmp_path, f"--screenshot={shot}", (report / "report.html").as_uri())
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == WINDOW
    colours = {colour for _, colour in image.getcolors(WINDOW[0] * WINDOW[1])}
    assert tuple(int(KIND_COLOURS["better"][i:i + 2], 16) for i in (1, 3, 5)) in colours, \
        "the significance matrix's colours are not on the first screen"
    done = chromium(tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf}",
                    (report / "report.html").as_uri())
    assert done.returncode == 0 and pdf.read_bytes().startswith(b"%PDF"), done.stderr[-2000:]
    assert pdf.stat().st_size > 100_000  # the plots are printed, not dropped
