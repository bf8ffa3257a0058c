"""The `nst compare` page as a person sees it: rendered by a real headless Chromium.

Marked `browser`: skipped where no Chromium is installed (`apt-get install chromium`).
"""

import json
import shutil
import subprocess

import pytest
from PIL import Image

from nst.compare import compare

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed")]


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


def test_the_report_page_renders_with_its_table_figures_and_failed_run(tmp_path, photo):
    _fake_sweep(tmp_path / "sweep", photo)
    page = compare([tmp_path / "sweep"], tmp_path / "report")["html"]
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
    flags += [f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    assert dom.count('<tr class="finished">') == 2 and dom.count('<tr class="failed">') == 1
    assert "image missing.png does not exist" in dom
    assert dom.count("data:image/png;base64,") == 3
    shot = tmp_path / "page.png"
    subprocess.run(
        [CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()],
        capture_output=True, timeout=120,
    )  # fmt: skip
    with Image.open(shot) as image:
        colours = image.convert("RGB").resize((60, 80)).getcolors(4800)
    assert colours is not None and len(colours) > 20, "the page rendered blank"
