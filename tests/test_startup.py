"""What a short run pays once: imports only where a run needs them, weights checked and built once per process."""

import hashlib
import json
import subprocess
import sys

import pytest
import torch

from nst.backbones import CAFFE_SHA256, VGG, backbone, caffe_weights_path, file_digest, load_verified
from nst.errors import NSTError
from nst.judge import judge_network
from nst.pipeline import Job, run

HEAVY = ("torch", "pytorch_lightning", "wandb")


def loaded_after(args: list[str], tmp_path) -> set[str]:
    """Which of the heavy packages an `nst ARGS` process had imported when it ended."""
    code = (
        "import atexit, sys, json\n"
        f"atexit.register(lambda: print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr))\n"
        f"sys.argv = ['nst', *{args!r}]\n"
        "from nst.cli import main\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "args", [["--cfg", "job"], ["--help"], ["--info"], ["hydra/launcher=batched", "--cfg", "hydra"]]
)
def test_commands_that_run_nothing_import_neither_torch_nor_lightning_nor_wandb(args, tmp_path):
    assert loaded_after(args, tmp_path) == set()


def test_nst_compare_reads_a_sweep_without_torch(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text(json.dumps({"status": "finished", "lbfgs_pairs": [3, 20]}))
    assert loaded_after(["compare", str(run_dir), "--out", str(tmp_path / "compare")], tmp_path) == set()


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "nst" / "checksums.json"


def test_a_weights_file_is_hashed_once_per_version(tmp_path, cache_home):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x" * 1000)
    assert file_digest(weights) == hashlib.sha256(b"x" * 1000).hexdigest()
    entry = json.loads(cache_home.read_text())[str(weights.resolve())]
    assert entry["size"] == 1000
    cached = {str(weights.resolve()): {**entry, "sha256": "from-the-cache"}}
    cache_home.write_text(json.dumps(cached))
    assert file_digest(weights) == "from-the-cache"  # same size and time: not read again


def test_a_weights_file_changed_in_place_is_hashed_again_and_refused(tmp_path, cache_home):
    weights = tmp_path / "vgg_normalised.pth"
    data = bytearray(caffe_weights_path().read_bytes()[:4096])
    weights.write_bytes(bytes(data))
    first = file_digest(weights)
    data[100] ^= 0xFF
    weights.write_bytes(bytes(data))  # same size, a new modification time
    assert file_digest(weights) != first
    with pytest.raises(NSTError, match="is corrupt"):
        load_verified(weights, first)


def test_a_checksum_cache_that_cannot_be_written_costs_only_the_hashing(tmp_path, monkeypatch):
    (tmp_path / "not-a-dir").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-dir"))
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"abc")
    assert file_digest(weights) == hashlib.sha256(b"abc").hexdigest()


def test_the_caffe_weights_pass_their_checksum():
    assert file_digest(caffe_weights_path()) == CAFFE_SHA256


def test_the_jobs_of_a_process_and_the_judge_share_one_network():
    first, second = backbone("vgg19", "caffe"), backbone("vgg19", "caffe")
    assert first is second
    assert judge_network().layers.conv1_1 is first.layers.conv1_1


def test_random_weights_are_drawn_anew_from_the_seed():
    torch.manual_seed(0)
    a = backbone("vgg19", "random")
    torch.manual_seed(1)
    b = backbone("vgg19", "random")
    torch.manual_seed(0)
    c = backbone("vgg19", "random")
    assert not torch.equal(a.layers.conv1_1.weight, b.layers.conv1_1.weight)
    assert torch.equal(a.layers.conv1_1.weight, c.layers.conv1_1.weight)


def test_trimming_leaves_the_shared_network_whole():
    net = VGG("vgg19", weights="random")
    trimmed = net.trim(["relu1_2"])
    assert list(trimmed.layers._modules) == ["conv1_1", "relu1_1", "conv1_2", "relu1_2"]
    assert "relu5_1" in net.layers._modules
    assert trimmed.layers.conv1_1 is net.layers.conv1_1


def test_a_job_after_another_in_one_process_gives_the_image_it_gives_alone(make_cfg, tmp_path):
    """The second job reuses the first one's network (trimmed to other layers, moved by Lightning): same bytes."""
    caffe = ["backbone.weights=caffe", "image.size=32", "optimizer.steps=1", "judge=true"]
    deep, shallow = make_cfg(*caffe, "layers=gatys"), make_cfg(*caffe, "layers=johnson")
    run([Job(deep, tmp_path / "deep")])
    run([Job(shallow, tmp_path / "shallow")])
    alone = subprocess.run(
        [sys.executable, "-m", "nst", "debug=tiny", *caffe, "layers=johnson", f"hydra.run.dir={tmp_path / 'alone'}",
         "optimizer.torch.max_iter=2"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert alone.returncode == 0, alone.stderr
    assert (tmp_path / "shallow" / "final.png").read_bytes() == (tmp_path / "alone" / "final.png").read_bytes()
    assert json.loads((tmp_path / "shallow" / "metrics.json").read_text())["content_error"] == pytest.approx(
        json.loads((tmp_path / "alone" / "metrics.json").read_text())["content_error"], rel=1e-6
    )
