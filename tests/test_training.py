"""`nst train` and `nst stylize`: a style network trained with the criterion image runs use, and used afterwards.

32 px crops, random loss-network weights, a few steps; everything through the real
entry point in this process, signals sent at a given step (no timing races).
"""

import csv
import io
import json
import os
import pickle
import shutil
import signal
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms.v2 import ColorJitter

from nst.backbones import VGG
from nst.criterion import LossWeights, PerceptualLoss
from nst.train.data import StepBatches, photo_files, photo_split, split
from nst.train.model_file import load_model
from nst.train.module import StyleNetTraining
from nst.train.network import TransformNet
from nst.train.styled_decoder import StyledDecoder
from tests.helpers import run_cli, signal_at, wandb_run

TINY = ["train", "debug=tiny"]


def photos(folder: Path, count: int = 4) -> Path:
    """`count` small photos of different colours in `folder`, one of them in a subfolder."""
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        where = folder / "sub" if i == 0 else folder
        shifted = [c.point(lambda v, s=60 * i * k: (v + s) % 256) for k, c in enumerate(_gradient().split())]
        Image.merge("RGB", shifted).save(where / f"p{i}.png")
    return folder


def _gradient() -> Image.Image:
    return Image.linear_gradient("L").resize((48, 40)).convert("RGB")


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "model.pt", weights_only=True)["state_dict"]


def test_a_few_training_steps_lower_the_loss():
    torch.manual_seed(0)
    layers = ({"relu2_2": 1.0}, {"relu1_2": 0.5, "relu2_2": 0.5})
    loss = {"content_weight": 1.0, "style_weight": 10.0, "tv_weight": 0.0}
    criterion = PerceptualLoss(VGG("vgg19", weights="random"), LossWeights.of([(loss, *layers)]), convention="johnson")
    module = StyleNetTraining(
        TransformNet(width=8), criterion, [torch.rand(1, 3, 32, 32)], [1.0], lambda p: torch.optim.Adam(p, lr=1e-3)
    )
    module.on_fit_start()
    batch = {"photos": torch.rand(2, 3, 32, 32), "style": torch.zeros(2, dtype=torch.long)}
    optimizer = module.configure_optimizers()["optimizer"]
    before = module.losses(batch)["total"].item()
    for _ in range(10):
        optimizer.zero_grad()
        module.losses(batch)["total"].backward()
        optimizer.step()
    assert module.losses(batch)["total"].item() < 0.2 * before


def test_a_training_run_leaves_its_model_figures_and_wandb_run_and_stylize_reproduces_its_validation(tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = [*TINY, "judge=true", "logger=wandb", "trainer.max_steps=3", f"hydra.run.dir={run_dir}"]
    code, err = run_cli(tmp_path, capsys, *args)
    assert code == 0, err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["kind"] == "training" and metrics["steps"] == 3
    assert metrics["content_error"] > 0 and metrics["style_swd"] > 0 and metrics["images_per_s"] > 0
    assert [line.split(",")[0] for line in (run_dir / "val.csv").read_text().splitlines()] == ["step", "0", "3"]
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["step_000000.png", "step_000003.png"]
    logged = wandb_run(next((run_dir / "wandb").glob("offline-run-*")))
    assert logged.summary["val/content_error"] == pytest.approx(metrics["content_error"])
    assert any("val/style_swd" in row for row in logged.history) and logged.exit_code == 0

    (photo,) = metrics["validated_on"]
    out = tmp_path / "styled.png"
    code, err = run_cli(tmp_path, capsys, "stylize", f"model={run_dir}", f"content={photo}", f"out={out}", "size=32")
    assert code == 0 and "s on cpu" in err
    assert out.read_bytes() == (run_dir / "final.png").read_bytes()  # final.png: that photo through the network
    network, info = load_model(run_dir / "model.pt")  # without Hydra or the run's config
    assert isinstance(network, StyledDecoder) and info["steps"] == 3  # nst train's default network


def test_an_interrupted_training_resumes_to_the_same_weights(tmp_path, capsys, monkeypatch):
    data = photos(tmp_path / "photos", 5)
    common = [*TINY, f"data.content={data}", "trainer.max_steps=5", "checkpoint_every=2"]
    assert run_cli(tmp_path, capsys, *common, f"hydra.run.dir={tmp_path / 'whole'}")[0] == 0
    cut = tmp_path / "cut"
    signal_at(monkeypatch, 2, signal.SIGTERM)
    code, err = run_cli(tmp_path, capsys, *common, f"hydra.run.dir={cut}")
    assert code == 143 and f"continue with `nst train resume={cut}`" in err
    assert json.loads((cut / "metrics.json").read_text())["status"] == "interrupted"
    assert (cut / "checkpoints" / "last.ckpt").is_file() and not (cut / "model.pt").exists()
    monkeypatch.undo()
    killed = tmp_path / "killed"  # as if killed outright after step 2: only the periodic checkpoint is left
    shutil.copytree(cut, killed)
    (killed / "resume.ckpt").unlink()
    for run_dir in (cut, killed):
        code, err = run_cli(tmp_path, capsys, *TINY[:1], f"resume={run_dir}")
        assert code == 0, err
        whole, again = weights(tmp_path / "whole"), weights(run_dir)
        assert all(torch.equal(whole[k], again[k]) for k in whole), run_dir
    assert json.loads((cut / "metrics.json").read_text())["steps"] == 5
    assert not (cut / "resume.ckpt").exists()


def test_a_training_sweep_gives_one_run_per_value_and_an_image_run_can_start_from_a_trained_network(
    tmp_path, capsys
):
    sweep = tmp_path / "sweep"
    code, err = run_cli(tmp_path, capsys, "train", "-m", "debug=tiny", "network=johnson", "loss.style_weight=1,100",
                        f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert code == 0, err
    trained = [weights(sweep / job) for job in ("0", "1")]
    assert not torch.equal(trained[0]["layers.0.1.weight"], trained[1]["layers.0.1.weight"])
    code, err = run_cli(tmp_path, capsys, "compare", str(sweep))  # beside image runs, with the judge's columns
    assert code == 0, err
    assert (sweep / "report" / "metrics.md").read_text().count("| finished |") == 2
    start = tmp_path / "start"
    code, err = run_cli(tmp_path, capsys, "debug=tiny", "init=network", f"network.model={sweep / '0'}",
                        "optimizer.steps=0", f"hydra.run.dir={start}")  # fmt: skip
    assert code == 0, err
    assert json.loads((start / "metrics.json").read_text())["status"] == "finished"


def test_every_batch_is_drawn_from_the_seed_and_its_step_alone_and_processes_share_it(tmp_path):
    paths = photo_files(photos(tmp_path / "photos", 3))
    batches = StepBatches(paths, 16, 24, 4, seed=5, steps=10, styles=3)
    again = StepBatches(paths, 16, 24, 4, seed=5, steps=10, styles=3)
    assert torch.equal(batches[7]["photos"], again[7]["photos"]) and batches[7]["photos"].shape == (4, 3, 16, 16)
    assert not torch.equal(batches[7]["photos"], batches[8]["photos"])
    assert not torch.equal(batches[7]["photos"], StepBatches(paths, 16, 24, 4, seed=6, steps=10)[7]["photos"])
    assert set(torch.cat([batches[k]["style"] for k in range(10)]).tolist()) == {0, 1, 2}
    shares = [StepBatches(paths, 16, 24, 4, seed=5, steps=10, styles=3, rank=r, world=2)[7] for r in (0, 1)]
    for key in ("photos", "style"):
        assert torch.equal(torch.cat([share[key] for share in shares]), batches[7][key])


def test_augmented_crops_are_drawn_from_the_seed_and_step_alone_and_leave_the_rest_of_the_batch_as_drawn(tmp_path):
    paths = photo_files(photos(tmp_path / "photos", 3))
    jitter = ColorJitter(brightness=(0.3, 1.0), contrast=(0.3, 1.0), saturation=(0.3, 1.0))
    plain = StepBatches(paths, 16, 24, 4, seed=5, steps=3, styles=3)
    altered = StepBatches(paths, 16, 24, 4, seed=5, steps=3, styles=3, augment=jitter)
    untouched = StepBatches(paths, 16, 24, 4, seed=5, steps=3, styles=3, augment=lambda crop: crop)
    before = torch.get_rng_state()
    step = altered[2]
    assert torch.equal(torch.get_rng_state(), before)  # torch's own generator is left where it was
    assert torch.equal(step["photos"], altered[2]["photos"]) and not torch.equal(step["photos"], plain[2]["photos"])
    assert torch.equal(untouched[2]["photos"], plain[2]["photos"]) and torch.equal(step["style"], plain[2]["style"])
    assert 0 <= step["photos"].min() and step["photos"].max() <= 1
    in_a_worker = list(DataLoader(altered, batch_size=None, num_workers=1))
    assert all(torch.equal(batch["photos"], altered[k]["photos"]) for k, batch in enumerate(in_a_worker))


def _bad_model(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "model.pt"
    if kind == "code":  # a pickle that would run a command on load
        path.write_bytes(pickle.dumps(__import__("os").system))
    elif kind == "damaged":
        path.write_bytes(b"PK\x03\x04 not a whole file")
    elif kind == "architecture":
        buffer = io.BytesIO()
        state = TransformNet(width=4).state_dict()
        settings = {"width": 8, "norm": "instance", "upsample": "resize", "residual_blocks": 5}
        torch.save({"format": "nst-style-network-1", "settings": settings, "state_dict": state, "info": {}}, buffer)
        path.write_bytes(buffer.getvalue())
    return path


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("missing", "does not exist; give the directory of an `nst train` run"),
        ("code", "cannot be read as a model file"),
        ("damaged", "cannot be read as a model file"),
        ("architecture", "do not fit the network it names"),
    ],
)
def test_a_bad_model_file_is_one_line_and_runs_no_code(tmp_path, capsys, kind, says):
    model = _bad_model(tmp_path, kind) if kind != "missing" else tmp_path / "nothing"
    code, err = run_cli(tmp_path, capsys, "stylize", f"model={model}", "content=x.png", f"out={tmp_path / 'o.png'}")
    assert code == 2 and len(err.strip().splitlines()) == 1 and says in err, err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("data.content={tmp}/none", "no such folder"),
        ("data.content={tmp}/empty", "holds no image files"),
        ("data.content={tmp}/broken", "holds only unreadable images"),
        ("data.size=4", "data.size=4 must be an integer >= 16"),
        ("data.batch_size=9", "is larger than the 3 photos left to train on"),
        ("data.val_count=4", "holds out every one of the 4 photos"),
        ("data.val={tmp}/none", "data.val={tmp}/none: no such folder"),
        ("data.val={tmp}/good/sub", "shares 1 photos with data.content"),
        ("+data.typo=1", "data.typo is not a setting of `nst train`"),
        ("data.augment={{_target_:torchvision.transforms.v2.RandomCrop,size:8}}", "must give back a crop of the same"),
        ("data.augment={{_target_:torchvision.transforms.ToPILImage}}", "data.augment must give back a crop"),
        ("trainer.max_steps=0", "trainer.max_steps=0 must be an integer >= 1"),
        ("network.frozen=9", "network.frozen=9: give how many of the decoder's 9 convolutions keep their"),
        ("network=johnson network.norm=group", "network.norm='group': choose one of instance, batch, conditional"),
        ("style_loss=mrf", "train with style_loss=gram, mean_std or swd"),
        ("loss.style_weight=50", "chosen by style_balance=1.0 before step 0: give style_balance=null"),
        (f"trainer.devices={os.cpu_count() + 1}", "CPU cores, one per training process; give at most"),
        ("trainer.num_nodes=2", "needs a cluster: run it with hydra/launcher=slurm"),
        ("trainer.strategy=ddp_spawn", "trainer.strategy='ddp_spawn': choose one of auto, ddp (several devices: ddp"),
        ("trainer.devices=2 data.batch_size=3", "cannot be shared by 2 processes: make it a multiple of 2"),
        ("trainer.devices=0", "trainer.devices=0 must be an integer >= 1"),
        ("trainer.precision=16-mixed", "trainer.precision=16-mixed needs a GPU"),
        ("trainer.precision=64-true", "trainer.precision=64-true needs a GPU"),
        ("trainer.max_steps=1e30", "trainer.max_steps=1e+30 must be an integer between 1 and 100000000"),
        ("schedule=step schedule.step_size=0", "schedule.step_size=0 must be an integer >= 1"),
        ("schedule=inverse_time schedule.decay=-1", "schedule.decay=-1 must be a finite number >= 0"),
        ("schedule=inverse_time schedule.decay=abc", "schedule.decay='abc' is not a number"),
        ("style={tmp}/broken/a.jpg", "cannot read image"),
    ],
)
def test_bad_training_input_is_one_line_before_anything_starts(tmp_path, capsys, setting, says):
    photos(tmp_path / "good", 4)
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.jpg").write_bytes(b"not a jpeg")
    content = [] if setting.startswith("data.content") else [f"data.content={tmp_path / 'good'}"]
    run_dir = tmp_path / "run"
    given = setting.format(tmp=tmp_path).split()
    code, err = run_cli(tmp_path, capsys, *TINY, *content, *given, f"hydra.run.dir={run_dir}")
    lines = [line for line in err.splitlines() if line.startswith("nst: error:")]
    assert code == 2 and len(lines) == 1 and says.format(tmp=tmp_path) in lines[0], err
    assert not run_dir.exists()  # refused before Hydra wrote anything


def test_a_validation_folder_is_judged_and_every_photo_of_the_training_folder_is_trained_on(tmp_path):
    content, val = photos(tmp_path / "photos", 3), photos(tmp_path / "val", 2)
    judged = photo_split(content, val, val_count=2, seed=0)
    assert judged.train == photo_files(content) and judged.val == photo_files(val)
    assert photo_split(content, None, 1, seed=0) == split(photo_files(content), 1, seed=0)  # no folder: held out


def test_unreadable_photos_are_skipped_with_one_warning(tmp_path, caplog):
    folder = photos(tmp_path / "photos", 2)
    (folder / "bad.jpg").write_bytes(b"nope")
    (folder / "notes.txt").write_text("not an image, not counted")
    assert [p.name for p in photo_files(folder)] == ["p1.png", "p0.png"]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith(f"1 of 3 images in {folder} cannot be read and are skipped")


def test_the_loss_network_is_frozen_left_out_of_checkpoints_and_its_style_targets_computed_once(tmp_path):
    torch.manual_seed(0)
    layers = ({"relu2_2": 1.0}, {"relu1_2": 0.5, "relu2_2": 0.5})
    loss = {"content_weight": 1.0, "style_weight": 10.0, "tv_weight": 0.0}
    criterion = PerceptualLoss(VGG("vgg19", weights="random"), LossWeights.of([(loss, *layers)]), convention="johnson")
    style = torch.rand(1, 3, 40, 24)
    module = StyleNetTraining(TransformNet(width=4), criterion, [style], [1.0], lambda p: torch.optim.Adam(p))
    shapes = []
    criterion.encoder.register_forward_pre_hook(lambda _, args: shapes.append(tuple(args[0].shape)))
    trainer = pl.Trainer(max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")  # fmt: skip
    batch = {"photos": torch.rand(2, 3, 16, 16), "style": torch.zeros(2, dtype=torch.long)}
    trainer.fit(module, DataLoader([batch] * 3, batch_size=None))
    assert shapes.count((1, 3, 40, 24)) == 1  # the style image: once per fit
    trainable = {name.split(".")[0] for name, p in module.named_parameters() if p.requires_grad}
    assert trainable == {"network"}
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)["state_dict"]
    assert saved and not any(key.startswith("criterion.") for key in saved)


def test_loader_workers_give_the_batches_the_training_process_would_make(tmp_path, capsys):
    """Slow-ish (~4 s): one loader process starts. The crops are augmented, which draws from torch's generator."""
    data = photos(tmp_path / "photos", 4)
    jitter = "data.augment={_target_:torchvision.transforms.v2.ColorJitter,brightness:0.5,contrast:0.5}"
    for workers in (0, 1):
        code, err = run_cli(tmp_path, capsys, *TINY, f"data.content={data}", f"data.workers={workers}", jitter,
                            f"hydra.run.dir={tmp_path / str(workers)}")  # fmt: skip
        assert code == 0, err
    alone, beside = weights(tmp_path / "0"), weights(tmp_path / "1")
    assert all(torch.equal(alone[k], beside[k]) for k in alone)


def test_a_residual_output_network_starts_as_the_identity_and_learns_from_there():
    photo = torch.rand(2, 3, 30, 34)
    network = TransformNet(width=8, residual_blocks=1, output="residual")
    assert torch.equal(network(photo), photo)
    assert network.settings["output"] == "residual" and "output" not in TransformNet(width=8).settings
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-2)
    for _ in range(2):
        optimizer.zero_grad()
        (network(photo) - 0.5).square().mean().backward()
        optimizer.step()
    assert not torch.equal(network(photo), photo)


def test_the_stability_term_makes_a_photo_and_its_noisy_copy_give_closer_images():
    """Gupta et al. 2017: with the term, the network's image changes less under the noise it was trained against."""
    from nst.train.module import Stability

    layers = ({"relu1_2": 1.0}, {"relu1_2": 1.0})  # the first block alone: a cheap loss network
    loss = {"content_weight": 1.0, "style_weight": 10.0, "tv_weight": 0.0}
    photos = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    noisy = photos + 0.05 * torch.randn(photos.shape, generator=torch.Generator().manual_seed(2))
    change = {}
    for weight in (0.0, 100.0):
        torch.manual_seed(0)
        criterion = PerceptualLoss(VGG("vgg19", weights="random"), LossWeights.of([(loss, *layers)]),
                                   convention="johnson")  # fmt: skip
        adam = lambda p: torch.optim.Adam(p, lr=1e-3)  # noqa: E731 - the factory the module calls
        module = StyleNetTraining(TransformNet(width=8), criterion, [torch.rand(1, 3, 32, 32)], [1.0], adam,
                                  stability=Stability(weight, 0.05))  # fmt: skip
        module.on_fit_start()
        optimizer = module.configure_optimizers()["optimizer"]
        batch = {"photos": photos, "style": torch.zeros(2, dtype=torch.long)}
        for _ in range(15):
            optimizer.zero_grad()
            terms = module.losses(batch)
            terms["total"].backward()
            optimizer.step()
        assert ("stability" in terms) == bool(weight)
        with torch.no_grad():
            change[weight] = (module(photos) - module(noisy)).abs().mean().item()
    assert change[100.0] < 0.9 * change[0.0]  # measured 0.79 of it after these 15 steps


def test_style_balance_chooses_the_style_weight_from_the_untrained_network_and_trains_with_it(tmp_path, capsys):
    chosen = {}
    for balance in (1, 3):
        run_dir = tmp_path / f"balance{balance}"
        code, err = run_cli(tmp_path, capsys, *TINY, "network=johnson", f"style_balance={balance}", "log_every=1",
                            "trainer.max_steps=4", f"hydra.run.dir={run_dir}")  # fmt: skip
        assert code == 0, err
        chosen[balance] = json.loads((run_dir / "metrics.json").read_text())["style_weight"]
        with open(run_dir / "history.csv", newline="") as f:
            first = next(csv.DictReader(f))
        expected = float(first["content"]) + chosen[balance] * float(first["style"]) + 1e-4 * float(first["tv"])
        assert float(first["total"]) == pytest.approx(expected, rel=1e-5)  # the chosen weight is the one trained with
        assert torch.load(run_dir / "model.pt", weights_only=True)["info"]["style_weight"] == chosen[balance]
    assert chosen[3] == pytest.approx(3 * chosen[1]) and chosen[1] != 5.0  # measured, not loss.style_weight
