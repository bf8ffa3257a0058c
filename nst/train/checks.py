"""Every check of a training job's config, run before anything starts: one line per bad value, naming the fix.

The settings it shares with an image run (loss, layers, backbone, style statistic,
logger, style images) are checked by the same functions (nst/checks.py).
"""

import os
from collections.abc import Sequence

import torch
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf

from nst.checks import check_shared, check_torch_optimizer, check_trainer, image_paths, refuse_unknown
from nst.configs import CONF_DIR, build
from nst.errors import NSTError
from nst.images import open_rgb
from nst.layers import config_layers
from nst.statistics import MRF
from nst.targets import blend_weights
from nst.train.data import photo_files, photo_split, split
from nst.train.kinds import kind_of_config

# What nst sets on the Trainer itself, from its own settings.
TRAINER_SET_BY_NST = {
    "log_every_n_steps": "log_every",
    "logger": "logger",
    "callbacks": "nst's callbacks",
    "default_root_dir": "hydra.run.dir",
    "enable_checkpointing": "checkpoint_every",
    "num_sanity_val_steps": "val_every",
    "limit_val_batches": "val_every",
    "use_distributed_sampler": "nst's batches, shared between DDP processes",
    "plugins": "the cluster nst runs on",
}


def check_training(cfg: DictConfig, overrides: Sequence[str] = (), described: bool = True) -> None:
    """Refuse a training job's bad settings, each with the one line that says how to fix it (`described=False`:
    nst/settings.py's rules were just checked)."""
    _check_keys(cfg)
    check_shared(cfg, overrides, "train" if described else None)
    if isinstance(build(cfg.style_loss, "style_loss"), MRF):
        raise NSTError("style_loss=mrf matches patches of one image at a time; train with style_loss=gram, mean_std "
                       "or swd")  # fmt: skip
    if cfg.style_balance is not None and any(o.lstrip("+~").split("=")[0] == "loss.style_weight" for o in overrides):
        raise NSTError(f"loss.style_weight is chosen by style_balance={cfg.style_balance} before step 0: give "
                       "style_balance=null with it (or sweep style_balance)")  # fmt: skip
    build(cfg.network, "network")
    kind = kind_of_config(cfg.network)
    data = cfg.data
    if data.get("augment"):
        _check_augment(data.augment)
    if data.get("resize") is not None and data.resize < data.size:
        raise NSTError(f"data.resize={data.resize} is smaller than the crops of data.size={data.size}: raise it")
    if cfg.optimizer.get("lr") is None:  # Adam's own default would train at another rate than the config says
        raise NSTError("optimizer.lr=None must be a number > 0")
    check_torch_optimizer(cfg.optimizer, "optimizer")
    check_trainer(cfg.trainer, TRAINER_SET_BY_NST, one_device=None)
    check_processes(cfg.trainer, int(cfg.data.batch_size))
    check_precision(cfg.trainer)
    if kind.any_style:
        _check_decoder(cfg)
        if cfg.stability.weight:
            raise NSTError("stability.weight is for networks of fixed styles; an AdaIN decoder's training has no "
                           "such term yet: set stability.weight=0")  # fmt: skip
    else:
        if cfg.data.get("style") is not None:
            raise NSTError("data.style is the style folder of network=adain_decoder: for this network give style=…")
        blend_weights(len(image_paths(cfg.style, "style")), cfg.style_blend)
    if cfg.network.get("norm") == "conditional_instance" and cfg.style_blend is not None:
        raise NSTError("style_blend blends the styles into one; network.norm=conditional_instance keeps them apart "
                       "(mix them at `nst stylize` with style_mix=[…]): drop style_blend")  # fmt: skip
    check_data(cfg, kind.any_style)


def _check_augment(node: DictConfig) -> None:
    """data.augment must turn a (3, H, W) crop in [0, 1] into another of the same shape (a PIL-only transform, or
    one that crops, would fail in the loader processes, after the run had started)."""
    augment, crop = build(node, "data.augment"), torch.rand(3, 16, 16)
    try:
        altered = augment(crop)
    except Exception as exc:  # whatever the transform raises: it is the user's, not nst's
        raise NSTError(f"data.augment cannot alter a (3, H, W) crop ({type(exc).__name__}: {exc}): give a transform "
                       "of image tensors, e.g. torchvision.transforms.v2.ColorJitter") from None  # fmt: skip
    if not isinstance(altered, torch.Tensor) or altered.shape != crop.shape:
        raise NSTError("data.augment must give back a crop of the same shape (3, H, W): crop or resize with "
                       "data.size and data.resize instead")  # fmt: skip


def _check_decoder(cfg: DictConfig) -> None:
    """An AdaIN decoder learns from the style folder, and its content term sits where AdaIN acts."""
    if cfg.get("style") is not None:
        raise NSTError("network=adain_decoder learns from the style folder data.style, not style=…: drop style")
    if not cfg.data.get("style"):
        raise NSTError("network=adain_decoder needs data.style=FOLDER: a folder of style images")
    content, _ = config_layers(cfg.layers, cfg.backbone.arch)
    if set(content) != {"relu4_1"}:
        raise NSTError(f"network=adain_decoder matches the AdaIN target at relu4_1, not at {', '.join(content)}: "
                       "keep layers=adain's content layer")  # fmt: skip
    if cfg.style_blend is not None:
        raise NSTError("style_blend means nothing to network=adain_decoder (each crop has its own style): drop it")


def check_processes(trainer: DictConfig, batch_size: int) -> None:
    """Several devices or nodes: DDP only, as many as this machine (or the SLURM job) gives, the batch shared evenly.

    Lightning's DDP starts one process per device (or SLURM does, one task each);
    nst's batches are split between them, so every process must get the same share.
    """
    devices, nodes = int(trainer.get("devices", 1)), int(trainer.get("num_nodes", 1))
    if devices * nodes == 1:
        return
    slurm_nodes, slurm_tasks = os.environ.get("SLURM_NNODES"), os.environ.get("SLURM_NTASKS_PER_NODE")
    if slurm_nodes and slurm_tasks and (int(slurm_nodes), int(slurm_tasks.split("(")[0])) != (nodes, devices):
        raise NSTError(f"trainer.devices={devices} trainer.num_nodes={nodes}, but this SLURM job has {slurm_tasks} "
                       f"tasks per node on {slurm_nodes} nodes: set hydra.launcher.tasks_per_node={devices} "
                       f"hydra.launcher.nodes={nodes}")  # fmt: skip
    if not slurm_nodes:
        if _local_sweep():
            raise NSTError("several devices in a local sweep: each process would start the whole sweep again; run "
                           "one training at a time, or sweep with hydra/launcher=slurm")  # fmt: skip
        if nodes > 1:
            raise NSTError(f"trainer.num_nodes={nodes} needs a cluster: run it with hydra/launcher=slurm "
                           f"hydra.launcher.nodes={nodes} hydra.launcher.tasks_per_node={devices}")  # fmt: skip
        _check_local_devices(trainer, devices)
    if batch_size % (devices * nodes):
        raise NSTError(f"data.batch_size={batch_size} cannot be shared by {devices * nodes} processes: make it a "
                       f"multiple of {devices * nodes}")  # fmt: skip


def check_data(cfg: DictConfig, any_style: bool) -> None:
    """The folders and images a training reads, before anything is written: photos enough to train on after the
    held-out ones, and style images that decode."""
    data, seed = cfg.data, int(cfg.seed)
    val = None if data.get("val") is None else to_absolute_path(str(data.val))
    photos = photo_split(to_absolute_path(str(data.content)), val, int(data.val_count), seed)
    if int(data.batch_size) > len(photos.train):
        raise NSTError(f"data.batch_size={data.batch_size} is larger than the {len(photos.train)} photos left to "
                       f"train on in {data.content}: lower data.batch_size or give more photos")  # fmt: skip
    if any_style:
        split(photo_files(to_absolute_path(str(data.style)), "data.style"), int(data.val_count), seed)
        return
    for path in image_paths(cfg.style, "style"):
        open_rgb(path)


def check_precision(trainer: DictConfig) -> None:
    """Mixed or double precision only where it runs: on a GPU (Lightning's CPU paths end in dtype errors)."""
    precision = str(trainer.get("precision", "32-true"))
    if precision in ("32-true", "32") or _on_gpu(trainer):
        return
    raise NSTError(f"trainer.precision={precision} needs a GPU; this training runs on the CPU: leave "
                   "trainer.precision=32-true")  # fmt: skip


def _on_gpu(trainer: DictConfig) -> bool:
    """Whether the Trainer's accelerator is a GPU: asked for, or `auto` on a machine that has one."""
    import torch

    accelerator = str(trainer.get("accelerator", "auto"))
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.device_count() > 0)


def _local_sweep() -> bool:
    """Whether this job is one of a sweep that runs here (not a job SLURM started)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _check_local_devices(trainer: DictConfig, devices: int) -> None:
    """No more GPUs than this machine has, no more CPU processes than it has cores."""
    import torch

    gpus = torch.cuda.device_count()
    if _on_gpu(trainer):
        if devices > gpus:
            raise NSTError(f"trainer.devices={devices}: this machine has {gpus} GPUs; give at most {gpus}")
    elif devices > (os.cpu_count() or 1):
        raise NSTError(f"trainer.devices={devices}: this machine has {os.cpu_count()} CPU cores, one per training "
                       f"process; give at most {os.cpu_count()}")  # fmt: skip


def _check_keys(cfg: DictConfig) -> None:
    """Keys nst would never read (`+data.typo=1`), and image-run keys that mean nothing to a training run."""
    primary = OmegaConf.load(CONF_DIR / "train.yaml")
    groups = {"backbone", "layers", "loss", "style_loss", "network", "schedule", "logger"}
    nodes = {"": (cfg, (set(primary.keys()) - {"defaults"}) | groups), "data.": (cfg.data, set(primary.data.keys())),
             "stability.": (cfg.stability, set(primary.stability.keys()))}
    refuse_unknown(nodes, "a setting of `nst train`")
