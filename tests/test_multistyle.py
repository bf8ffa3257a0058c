"""Many styles in one network (Dumoulin et al. 2017): trained together, picked and mixed at `nst stylize`.

32 px crops, random loss-network weights, a few steps, through the real entry point.
"""

import json

import numpy as np
import pytest
from PIL import Image

from tests.helpers import run_cli

STYLES = "style=[${styles:starry_night.jpg},${styles:the_scream.jpg},${styles:shipwreck.jpg}]"
THREE = ["train", "debug=tiny", "network=johnson", "network.norm=conditional_instance", STYLES, "network.width=8"]


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.int16)


def test_one_network_learns_three_styles_each_index_its_own_image_and_a_one_hot_mix_that_style(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, err = run_cli(tmp_path, capsys, *THREE, "trainer.max_steps=3", "judge=true", f"hydra.run.dir={run_dir}")
    assert code == 0, err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "finished"
    assert [s["style"].rsplit("/", 1)[1] for s in metrics["per_style"]] == [
        "starry_night.jpg", "the_scream.jpg", "shipwreck.jpg"
    ]  # fmt: skip
    assert metrics["style_error"] == pytest.approx(sum(s["style_error"] for s in metrics["per_style"]) / 3)
    photo = tmp_path / "photo.png"
    Image.linear_gradient("L").resize((40, 32)).convert("RGB").save(photo)
    images = []
    for k in range(3):
        out = tmp_path / f"style{k}.png"
        code, err = run_cli(tmp_path, capsys, "stylize", f"model={run_dir}", f"content={photo}", f"out={out}",
                            f"style_index={k}")  # fmt: skip
        assert code == 0, err
        images.append(_pixels(out))
    assert all(np.abs(images[i] - images[j]).max() > 0 for i, j in ((0, 1), (0, 2), (1, 2)))
    mixed = tmp_path / "mixed.png"
    code, err = run_cli(tmp_path, capsys, "stylize", f"model={run_dir}", f"content={photo}", f"out={mixed}",
                        "style_mix=[0,1,0]")  # fmt: skip
    assert code == 0, err
    assert np.array_equal(_pixels(mixed), images[1])
    half = tmp_path / "half.png"
    code, err = run_cli(tmp_path, capsys, "stylize", f"model={run_dir}", f"content={photo}", f"out={half}",
                        "style_mix=[0.5,0.5,0]")  # fmt: skip
    assert code == 0 and "0.5 starry_night.jpg, 0.5 the_scream.jpg" in err
    assert not np.array_equal(_pixels(half), images[0]) and not np.array_equal(_pixels(half), images[1])
    for bad, says in (
        ("style_index=3", "style_index=3 is out of range: this network knows 3 styles, 0 to 2"),
        ("style_mix=[0.5,0.6,0]", "must be 3 weights >= 0 that sum to 1"),
        ("style_mix=[0.25,0.25,0.25,0.25]", "style_mix has 4 weights, but this network was trained for 3 styles"),
        ("style_mix=[nan,1,0]", "must be 3 weights >= 0 that sum to 1"),
    ):
        code, err = run_cli(tmp_path, capsys, "stylize", f"model={run_dir}", f"content={photo}",
                            f"out={tmp_path / 'bad.png'}", bad)  # fmt: skip
        assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "bad.png").exists()
    start = tmp_path / "start"
    code, err = run_cli(tmp_path, capsys, "debug=tiny", "init=network", f"network.model={run_dir}",
                        "network.style_index=2", "optimizer.steps=0", f"content={photo}", "image.size=40",
                        f"hydra.run.dir={start}")  # fmt: skip
    assert code == 0, err
    assert np.array_equal(_pixels(start / "final.png"), images[2])  # the image run starts from that style


def test_a_one_style_network_refuses_a_style_index_and_a_blend_is_refused_for_a_multi_style_one(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, err = run_cli(tmp_path, capsys, "train", "debug=tiny", "network=johnson", "network.width=4",
                        f"hydra.run.dir={run_dir}")  # fmt: skip
    assert code == 0, err
    code, err = run_cli(tmp_path, capsys, "stylize", f"model={run_dir}", f"content={run_dir / 'final.png'}",
                        f"out={tmp_path / 'o.png'}", "style_index=0")  # fmt: skip
    assert code == 2 and "trained for one style" in err
    code, err = run_cli(tmp_path, capsys, *THREE, "style_blend=[1,1,1]", f"hydra.run.dir={tmp_path / 'blend'}")
    assert code == 2 and "drop style_blend" in err and len(err.strip().splitlines()) == 1, err
