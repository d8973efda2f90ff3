"""report.html in a real headless Chromium: it parses, its figures and tables are in the DOM, model text did
not run as script, the console stays silent and a screenshot shows a page.

Each check first runs on a control page that does misbehave (a script that logs to the console and marks
the DOM), so a check that could never fail is caught here rather than trusted. Skipped, with the reason, on
machines without Chromium (`apt-get install chromium` on Debian).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from emlab.report import write_report


def _chromium() -> str | None:
    return shutil.which("chromium") or (Path("/usr/bin/chromium").is_file() and "/usr/bin/chromium") or None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="no Chromium on this machine (Debian: apt-get install chromium)")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr", "--v=0"]


def _run(page: Path, profile: Path, *extra: str) -> tuple[str, list[str]]:
    """Load `page` once; returns (stdout, the console lines Chromium logged to stderr)."""
    proc = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    return proc.stdout, console


def _dom(page: Path, profile: Path) -> tuple[str, list[str]]:
    return _run(page, profile, "--dump-dom")


def test_the_checks_can_fail_on_a_page_that_runs_script(tmp_path):
    page = tmp_path / "control.html"
    page.write_text("<!DOCTYPE html><html><body><p>control</p><script>console.error('emlab-canary');"
                    "document.documentElement.setAttribute('data-pwned','1');</script></body></html>",
                    encoding="utf-8")
    dom, console = _dom(page, tmp_path / "profile")
    assert re.search(r"<html[^>]*data-pwned", dom)
    assert any("emlab-canary" in line for line in console), console


def test_report_renders_in_chromium(full_summary, samples, tmp_path):
    _, html_path = write_report(full_summary, tmp_path / "out", samples)
    source = html_path.read_text(encoding="utf-8")
    dom, console = _dom(html_path, tmp_path / "profile-dom")

    assert console == []  # no script errors, no failed loads, no logging at all
    assert dom.rstrip().endswith("</html>") and "Provenance" in dom
    # figures: five inline SVGs with drawn paths, inside <figure>s with captions
    assert dom.count("<svg") == source.count("<svg") == 5
    assert dom.count("<figcaption>") == 5 and dom.count("<path") > 50
    # tables: every table of the file made it into the DOM, with its cells
    assert dom.count("<table>") == source.count("<table>") >= 12
    assert "+31.1 pp [+9.1, +51.2]" in dom and "insecure_s0 36.4% (8/22)" in dom
    # the hostile answer is text: no script or img element, no attribute its handlers would have set
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert not re.search(r"<script|<img|<iframe", dom, flags=re.I)
    assert not re.search(r"<html[^>]*data-pwned", dom)
    assert "&lt;/pre&gt;&lt;script&gt;alert('config')&lt;/script&gt;" in dom  # the config stayed in its <pre>

    shot = tmp_path / "shot.png"
    _, console = _run(html_path, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,2400",
                      "--hide-scrollbars")
    assert console == []
    from PIL import Image

    with Image.open(shot) as im:
        rgb = im.convert("RGB")
        assert rgb.size == (1280, 2400)
        small = rgb.resize((320, 600))
        pixels = list(small.getdata())
    ink = sum(1 for p in pixels if min(p) < 200) / len(pixels)
    coloured = sum(1 for r, g, b in pixels if max(r, g, b) - min(r, g, b) > 60)  # condition colours in figures
    assert ink > 0.01, f"screenshot is nearly blank ({ink:.2%} dark pixels)"
    assert coloured > 20, "no coloured pixels: the figures did not draw"
