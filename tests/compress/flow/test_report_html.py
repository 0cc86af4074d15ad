"""report.html: written on every run, self-contained, and it renders in headless Chromium with every
section present and no broken image."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlinfn_compress.cli import main

SECTIONS = ["summary", "weights", "layers", "resources", "accuracy"]
CHECK = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const broken = imgs.filter((i) => !(i.complete && i.naturalWidth > 0)).map((i) => i.alt);
  const sections = Array.from(document.querySelectorAll("section")).map((s) => s.id);
  document.body.setAttribute("data-check", JSON.stringify({images: imgs.length, broken: broken, sections: sections}));
});
</script>"""

pytestmark = pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")


def chromium(*args: str) -> str:
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout


def rendered(page: Path, tmp: Path) -> dict[str, Any]:
    """What Chromium sees in ``page``: images, broken images (by alt text), section ids."""
    probe = tmp / f"probe_{page.name}"
    probe.write_text(page.read_text().replace("</body>", CHECK + "</body>"))
    dom = chromium("--virtual-time-budget=10000", "--dump-dom", probe.resolve().as_uri())
    m = re.search(r'data-check="([^"]*)"', dom)
    assert m is not None, dom[:500]
    return json.loads(m.group(1).replace("&quot;", '"'))


@pytest.fixture(scope="module")
def run_with_data(small_mlp: Callable[[str, float], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("html")
    rng = np.random.default_rng(4)
    x = rng.normal(size=(160, 8))
    y = rng.integers(0, 3, size=160)
    data = tmp / "data.npz"
    np.savez(data, x_train=x[:120], y_train=y[:120], x_test=x[120:], y_test=y[120:])
    out = tmp / "out"
    args = [str(small_mlp("html_mlp", 0.0)), "--data", str(data), "--prune", "0.5", "--epochs", "1"]
    assert main([*args, "--simulate", "60", "-q", "-o", str(out)]) == 0
    return out


@pytest.mark.slow
def test_report_html_renders_with_every_section(run_with_data: Path, tmp_path: Path) -> None:
    page = run_with_data / "report.html"
    text = page.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", text)  # nothing to fetch: it opens offline
    seen = rendered(page, tmp_path)
    assert seen["sections"] == SECTIONS and seen["broken"] == [] and seen["images"] == 3  # weights, layers, accuracy
    assert "BIT-EXACT" in text and "Not measured: run with <code>--synth</code>" in text
    report = json.loads((run_with_data / "report.json").read_text())
    assert f"{report['accuracy']['samples']} test samples" in text
    for layer in report["layers"]:
        assert f"<td>{layer['name']}</td>" in text
    shot = tmp_path / "report.png"
    chromium("--window-size=1200,2600", f"--screenshot={shot}", page.resolve().as_uri())
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[:2] == (2600, 1200) and float(pixels.std()) > 0.05  # a page, not a blank


def test_a_broken_image_is_seen(run_with_data: Path, tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    text = (run_with_data / "report.html").read_text()
    page.write_text(re.sub(r"base64,[A-Za-z0-9+/=]{20}", "base64,AAAAnotapng", text, count=1))
    assert rendered(page, tmp_path)["broken"] == ["weight histograms"]
