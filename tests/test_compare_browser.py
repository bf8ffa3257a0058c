"""The `nst compare` page as a person sees it: rendered by a real headless Chromium.

Marked `browser`: skipped where no Chromium is installed (`apt-get install chromium`);
CI installs it and sets NST_REQUIRE=browser, which turns that skip into a failure.
"""

import json
import re
import shutil
import subprocess

import pytest
from PIL import Image

from nst.compare import compare
from tests.helpers import required

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None and not required("browser"), reason="no chromium installed"),
]
# Run in the page once it has loaded: what the browser made of each image, as attributes --dump-dom shows.
SEEN = """<script>window.addEventListener("load", () => {
  document.body.dataset.images = [...document.images].map(i => i.complete && i.naturalWidth > 0).join(",");
  document.body.dataset.front = [...document.querySelectorAll("ol.front li")].map(li => li.textContent).join("|");
});</script>"""


def _fake_sweep(root, photo):
    """Two finished runs and a failed one, as nst leaves them on disk."""
    for i, (style_weight, status) in enumerate([(100, "finished"), (1000, "finished"), (10, "failed")]):
        job = root / str(i)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- loss.style_weight={style_weight}\n")
        metrics = {"status": status, "wall_time_s": 1.0}
        if status == "finished":
            metrics |= {"content_error": 0.1 * (i + 1), "style_error": 0.5 / (i + 1), "error_sum": 0.6}
            Image.open(photo()).save(job / "final.png")
            (job / "history.csv").write_text("step,total\n1,10\n2,5\n")
        else:
            metrics["error"] = "image missing.png does not exist"
        (job / "metrics.json").write_text(json.dumps(metrics))


def test_the_report_page_shows_its_images_table_front_and_failed_run_in_a_real_browser(tmp_path, photo):
    assert CHROMIUM is not None, "no chromium installed: apt-get install chromium"
    _fake_sweep(tmp_path / "sweep", photo)
    page = compare([tmp_path / "sweep"], tmp_path / "report")["html"]
    probed = page.with_name("probed.html")
    probed.write_text(page.read_text().replace("</body>", SEEN + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
    flags += ["--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [CHROMIUM, *flags, "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    images = re.search(r'data-images="([^"]*)"', dom)
    assert images and images.group(1).split(",") == ["true"] * 3, "an image did not load: " + str(images)
    front = re.search(r'data-front="([^"]*)"', dom)
    assert front and front.group(1).split("|") == ["#1 loss.style_weight=100", "#2 loss.style_weight=1000"], front
    assert dom.count('<tr class="finished">') == 2 and dom.count('<tr class="failed">') == 1
    assert "image missing.png does not exist" in dom
    shot = tmp_path / "page.png"
    subprocess.run(
        [CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()],
        capture_output=True, timeout=120,
    )  # fmt: skip
    with Image.open(shot) as image:
        pixels = image.convert("RGB").resize((300, 400)).getcolors(120000)
    assert pixels is not None and len(pixels) > 20, "the page rendered blank"
    front_red = sum(n for n, (r, g, b) in pixels if r > 180 and g < 90 and b < 90)
    assert front_red > 0, "the Pareto front's red line is not on the page"
