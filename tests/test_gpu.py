"""On a CUDA device: the default fast path runs, and a batch still gives each run the image it gets alone."""

import numpy as np
import pytest
from PIL import Image

from nst.pipeline import Job, run
from tests.helpers import train

pytestmark = pytest.mark.gpu  # skipped without a CUDA device (tests/conftest.py)
ON_GPU = ["trainer.accelerator=gpu", "image.size=64", "optimizer.steps=3"]


def test_a_run_on_the_gpu_takes_the_fast_path_and_ends_where_the_cpu_run_does(make_cfg, tmp_path):
    gpu = train(make_cfg(*ON_GPU), tmp_path / "gpu")
    cpu = train(make_cfg(*ON_GPU, "trainer.accelerator=cpu"), tmp_path / "cpu")
    assert gpu["status"] == "finished" and gpu["device"].startswith("cuda")
    assert gpu["peak_memory_kind"] == "cuda_max_allocated"
    assert gpu["loss/total"] == pytest.approx(cpu["loss/total"], rel=0.05)  # TF32 convolutions, compact L-BFGS


def test_a_batch_on_the_gpu_gives_each_run_the_image_it_gets_alone(make_cfg, tmp_path):
    points = [["loss.style_weight=1e4"], ["loss.style_weight=1e6", "optimizer.torch.lr=0.5"]]
    together = run([Job(make_cfg(*ON_GPU, *p), tmp_path / f"together{i}") for i, p in enumerate(points)])
    alone = [train(make_cfg(*ON_GPU, *p), tmp_path / f"alone{i}") for i, p in enumerate(points)]
    for i, (a, b) in enumerate(zip(alone, together, strict=True)):
        assert a["loss/total"] == pytest.approx(b["loss/total"], rel=1e-3)
        pixels = [np.asarray(Image.open(tmp_path / f"{k}{i}" / "final.png"), dtype=int) for k in ("alone", "together")]
        assert np.abs(pixels[0] - pixels[1]).max() <= 2
