"""Every check of a job's config, run before anything starts: no logger, output file or network is touched first.

Each bad value is one `NSTError` naming the key, what it must be and how to fix it.
The checks read the config only (and whether the files it names exist); reading
those files is the pipeline's next step, which has checks of its own (an image it
cannot decode, weights of the wrong shape).
"""

import inspect
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, ListConfig, OmegaConf

from nst import settings
from nst.backbones import check_backbone
from nst.configs import CONF_DIR, EXAMPLES, build
from nst.errors import NSTError
from nst.images import check_image, check_init, size_at
from nst.layers import config_layers, min_side
from nst.memory import check_stages
from nst.regions import regions_of
from nst.statistics import MRF, StyleStatistic
from nst.targets import blend_weights


def check_job(cfg: DictConfig, overrides: Sequence[str] = (), described: bool = True) -> None:
    """Refuse an image job's bad settings, each with the one line that says how to fix it.

    `overrides` are the job's command-line overrides, for what Hydra accepts but
    would silently ignore; `described=False` where nst/settings.py's rules were just checked.
    """
    check_keys(cfg)
    check_shared(cfg, overrides, "image" if described else None)
    check_scales(cfg.image)
    check_image_trainer(cfg.trainer)
    check_init(cfg.init)
    if cfg.init == "adain":
        build(cfg.adain, "adain").load()
    if cfg.init == "network":
        build(cfg.network, "network")
    for override in overrides:
        if override.lstrip("+").startswith("adain.") and cfg.init != "adain":
            raise NSTError(f"{override} changes nothing: the adain settings make the start image of init=adain")
    statistic = check_style_loss(cfg)
    check_optimizer(cfg.optimizer)
    if isinstance(cfg.content, ListConfig):
        raise NSTError("content takes one image: sweep several with `nst -m content=a.jpg,b.jpg`")
    styles = image_paths(cfg.style, "style")
    blend_weights(len(styles), cfg.style_blend)
    check_images(cfg, image_paths(cfg.content, "content")[0], styles, statistic.min_size)
    check_regions(cfg, statistic)


def check_shared(cfg: DictConfig, overrides: Sequence[str], run: str | None) -> None:
    """What every branch checks alike: overrides, the described settings of `run` (None: checked already), the
    loss, logger, loss network and layers, the fast path, the blend's type and the sweep objective."""
    check_overrides(overrides)
    if run is not None:
        settings.check(cfg, run)
    check_something_to_optimise(cfg.loss)
    check_logger(cfg.logger)
    check_backbone(cfg.backbone.arch, cfg.backbone.weights, cfg.backbone.pooling, cfg.backbone.padding)
    if cfg.backbone.weights != "random":  # read and verified now, then kept for the run (nst/backbones.py)
        build(cfg.backbone, "backbone")
    config_layers(cfg.layers, cfg.backbone.arch)
    build(cfg.speed, "speed")
    check_blend(cfg.style_blend)
    check_objective(cfg)


# The figures a finished run reports, which a sweeper may minimise (`objective`); the first four need the judge.
OBJECTIVES = ("content_error", "style_error", "style_swd", "error_sum", "loss/total", "loss/content", "loss/style")


def check_objective(cfg: DictConfig) -> None:
    """`objective` names figures the run will produce: the judge's only where the judge runs."""
    names = cfg.get("objective")
    if names is None:
        return
    names = [names] if isinstance(names, str) else list(names)
    for name in names:
        if name not in OBJECTIVES:
            raise NSTError(f"objective {name!r} is no figure a run reports: choose from {', '.join(OBJECTIVES)}")
        if name in OBJECTIVES[:4] and not cfg.get("judge", True):
            raise NSTError(f"objective {name} is the judge's figure, but judge=false: set judge=true")


def check_blend(blend: object) -> None:
    """`style_blend` is null or a list of numbers (their count is checked against the styles later)."""
    if blend is None:
        return
    items = list(blend) if isinstance(blend, ListConfig) else None
    if items is None or any(isinstance(w, bool) or not isinstance(w, int | float) for w in items):
        raise NSTError(f"style_blend={blend!r} must be a list of weights, one per style image: style_blend=[0.7,0.3]")
    if not all(math.isfinite(w) and w >= 0 for w in items):
        raise NSTError(f"style_blend={items}: weights must be >= 0 and finite, one per style image")


def number(node: Any, key: str, kind: type, minimum: float, prefix: str = "", maximum: float | None = None) -> Any:
    """A numeric setting, or one line saying which key is wrong and what it must be."""
    value = node.get(key)
    what = "an integer" if kind is int else "a number"
    try:
        finite = math.isfinite(float(value)) and not isinstance(value, bool)
        result = kind(value) if finite else None
    except (TypeError, ValueError):
        raise NSTError(f"{prefix}{key}={value!r} is not a number") from None
    if result is None:
        raise NSTError(f"{prefix}{key}={value!r} must be a finite number, {what} >= {minimum:g}")
    if result != float(value) or not result >= minimum:
        raise NSTError(f"{prefix}{key}={value!r} must be {what} >= {minimum:g}")
    if maximum is not None and result > maximum:
        raise NSTError(f"{prefix}{key}={value!r} must be {what} between {minimum:g} and {maximum:g}")
    return result


def check_overrides(overrides: Sequence[str]) -> None:
    """An empty dict merges nothing into a config node: `layers.style={}` would leave the style layers as they were."""
    for override in overrides:
        key, _, value = override.partition("=")
        if value.strip() == "{}" and not key.startswith(("~", "hydra")):
            name = key.lstrip("+")
            raise NSTError(
                f"{override} changes nothing (Hydra merges an empty dict into {name}): to replace {name}, drop it "
                f"with ~{name} and add what you want, e.g. ~{name} +{name}.relu1_1=1, or pick a config group option"
            )


def _group_keys(group: str) -> set[str]:
    """Every key an option of config group `group` sets (its folder in conf/)."""
    keys: set[str] = set()
    for path in (CONF_DIR / group).glob("*.yaml"):
        keys |= set(OmegaConf.load(path).keys()) - {"defaults"}
    return keys


def check_keys(cfg: DictConfig) -> None:
    """Refuse keys nst would never read (`+loss.typo=1`): a typo would otherwise run the defaults in silence."""
    primary = OmegaConf.load(CONF_DIR / "config.yaml")
    top = set(primary.keys()) - {"defaults"}
    nodes = {"": (cfg, top | {"backbone", "layers", "loss", "style_loss", "optimizer", "logger"})}
    for group in ("loss", "optimizer"):
        nodes[f"{group}."] = (cfg[group], _group_keys(group))
    nodes["image."] = (cfg.image, set(primary.image.keys()))
    refuse_unknown(nodes, "a setting nst reads")


def refuse_unknown(nodes: Mapping[str, tuple[DictConfig, set[str]]], what: str) -> None:
    """The first key of a node (by its prefix) that is not among its known keys, as one line listing those."""
    for prefix, (node, known) in nodes.items():
        unknown = sorted(set(node.keys()) - known)
        if unknown:
            raise NSTError(
                f"{prefix}{unknown[0]} is not {what}: the {prefix.rstrip('.') or 'top-level'} keys are "
                f"{', '.join(sorted(known))}"
            )


def check_scales(image: DictConfig) -> None:
    """The coarse-to-fine sizes: a growing list of sizes."""
    if image.get("scales") is not None and not isinstance(image.scales, ListConfig):
        raise NSTError(f"image.scales={image.scales!r} must be a list of sizes, e.g. image.scales=[256,512]")
    scales = [
        number({f"scales[{i}]": size}, f"scales[{i}]", int, 1, "image.")
        for i, size in enumerate(image.get("scales") or [])
    ]
    if scales != sorted(set(scales)):
        raise NSTError(
            f"image.scales={scales} must grow, coarse to fine (each stage starts from the last): e.g. [256,512]"
        )


def check_loss(loss: DictConfig) -> None:
    """A `loss` node checked alone: its described settings (weights, convention), then what they leave to do."""
    settings.check_group(loss, "loss")
    check_something_to_optimise(loss)


def check_something_to_optimise(loss: DictConfig) -> None:
    """Weights that leave nothing to optimise (each weight's own rule is nst/settings.py's)."""
    if loss.content_weight == 0 and loss.style_weight == 0:
        raise NSTError("loss.content_weight and loss.style_weight are both 0: nothing to optimise")


def check_style_loss(cfg: DictConfig) -> StyleStatistic:
    """The style statistic builds, and MRF, which has no weights to blend, is not asked to blend."""
    statistic = build(cfg.style_loss, "style_loss")
    if isinstance(statistic, MRF) and cfg.style_blend is not None:
        raise NSTError(
            "style_blend weighs style statistics, but style_loss=mrf matches the patches of all style images alike: "
            "drop style_blend, or use style_loss=gram or mean_std"
        )
    return statistic


# The numeric settings of the torch optimizers nst ships, and the range each must be in: (kind, minimum, maximum).
OPTIMIZER_NUMBERS = {
    "max_iter": (int, 1, None),
    "max_eval": (int, 1, None),
    "history_size": (int, 1, None),
    "eps": (float, 0, None),
    "weight_decay": (float, 0, None),
}


def check_optimizer(optimizer: DictConfig) -> None:
    """`optimizer.torch` builds a torch optimizer and its numbers are in range: else they fail after compute."""
    if optimizer.get("restart_stuck") not in (None, True, False):
        raise NSTError(f"optimizer.restart_stuck={optimizer.restart_stuck!r}: choose true or false")
    check_torch_optimizer(optimizer.torch, "optimizer.torch")


def check_torch_optimizer(node: DictConfig, key: str) -> None:
    """A torch optimizer's node (`key` names it): lr and the numbers in range, and it builds over a parameter."""
    lr = node.get("lr")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr < math.inf):
        raise NSTError(f"{key}.lr={lr!r} must be a finite number > 0")
    for name, (kind, minimum, maximum) in OPTIMIZER_NUMBERS.items():
        if node.get(name) is not None:
            number(node, name, kind, minimum, f"{key}.", maximum)
    for i, beta in enumerate(node.get("betas") or []):
        number({f"betas[{i}]": beta}, f"betas[{i}]", float, 0, f"{key}.", maximum=0.999999)
    factory = build(node, key)
    try:
        factory([torch.zeros(1, requires_grad=True)])
    except (TypeError, ValueError) as exc:
        raise NSTError(f"cannot build {key} ({exc}): check the {key}.* settings") from None


# What nst sets on the Trainer itself, from its own settings.
TRAINER_SET_BY_NST = {
    "max_steps": "optimizer.steps",
    "log_every_n_steps": "log_every",
    "logger": "logger",
    "callbacks": "nst's callbacks",
    "default_root_dir": "hydra.run.dir",
    "enable_checkpointing": "resume.ckpt on a signal",
    "num_sanity_val_steps": "nst (no validation)",
}


# The Trainer settings an image run honours; any other would change nothing or break its manual optimisation.
TRAINER_HONOURED = {
    "_target_", "accelerator", "devices", "num_nodes", "precision", "deterministic", "benchmark",
    "enable_model_summary", "enable_progress_bar", "detect_anomaly", "profiler",
}  # fmt: skip
# Precisions an image run honours: its images are fp32 parameters; speed.bf16 runs the backbone in bf16.
IMAGE_PRECISIONS = ("32-true", "32", 32)


def check_image_trainer(trainer: DictConfig) -> None:
    """`check_trainer`, then what an image run cannot honour: a Trainer key it ignores, another precision."""
    check_trainer(trainer)
    for key in trainer:
        if key not in TRAINER_HONOURED:
            raise NSTError(
                f"trainer.{key} is not honoured by an image run (it steps its own optimizer, one step per "
                f"Trainer step): drop it; it honours {', '.join(sorted(TRAINER_HONOURED - {'_target_'}))}"
            )
    if trainer.get("precision", "32-true") not in IMAGE_PRECISIONS:
        raise NSTError(
            f"trainer.precision={trainer.precision!r}: an image run optimises fp32 images; for the fast path set "
            "speed.bf16=true (the backbone under bf16 autocast)"
        )


def check_trainer(
    trainer: DictConfig,
    set_by_nst: Mapping[str, str] = TRAINER_SET_BY_NST,
    one_device: str | None = "batch runs on one device with hydra/launcher=batched instead",
) -> None:
    """Keys Lightning's Trainer takes and nothing nst sets itself (`set_by_nst`: key -> the setting it comes from);
    one device on one node unless `one_device` is None, else it ends the line that refuses several."""
    import pytorch_lightning as pl

    accepted = set(inspect.signature(pl.Trainer.__init__).parameters) - {"self"}
    for key in trainer:
        if key == "_target_":
            continue
        if key in set_by_nst:
            raise NSTError(f"trainer.{key} is set by nst from {set_by_nst[key]}: drop it")
        if key not in accepted:
            raise NSTError(f"trainer.{key} is not a setting of pytorch_lightning.Trainer: check the spelling")
    for key in ("devices", "num_nodes") if one_device is not None else ():
        if trainer.get(key, 1) != 1:
            raise NSTError(
                f"trainer.{key}={trainer.get(key)!r}: nst runs on one device of one node (several processes "
                f"would write the same files); {one_device}"
            )


def check_logger(logger: DictConfig | None) -> None:
    """Every key the logger's class (and, for W&B, `wandb.init`) takes; W&B's mode one of its three."""
    if not logger or "_target_" not in logger:
        return
    target = str(logger._target_)
    module_name, _, name = target.rpartition(".")
    import importlib

    accepted = set(inspect.signature(getattr(importlib.import_module(module_name), name).__init__).parameters)
    if target.endswith("WandbLogger"):
        import wandb

        accepted |= set(inspect.signature(wandb.init).parameters)
        mode = logger.get("mode") or "offline"
        if mode not in ("offline", "online", "disabled"):
            raise NSTError(f"logger.mode={mode!r}: choose offline, online or disabled")
    for key in logger:
        if key != "_target_" and key not in accepted:
            raise NSTError(f"logger.{key} is not a setting of {name}: check the spelling (nst --cfg job lists them)")


def image_paths(value: object, key: str) -> list[str]:
    """One path or a list of paths from the config, resolved against the directory nst was started in."""
    items = list(value) if isinstance(value, ListConfig) else [value]
    if not items:
        raise NSTError(f"{key} is an empty list: give at least one image")
    paths = [to_absolute_path(str(p)) for p in items]
    for given, path in zip(items, paths, strict=True):
        if not Path(path).is_file():
            shipped = sorted(p.name for p in EXAMPLES.iterdir() if p.name.endswith((".jpg", ".png")))
            hint = f"; nst ships {', '.join(shipped)}: write {key}=${{example:NAME}} for one of them"
            if Path(str(given)).name in shipped:
                hint = f"; the bundled one is {key}=${{example:{Path(str(given)).name}}}"
            raise NSTError(f"image {path} does not exist or is not a file: check the path{hint}")
    return paths


def check_regions(cfg: DictConfig, statistic: StyleStatistic) -> None:
    """Spatial control's masks read and checked against the images (nst/regions.py's rules), and what it needs."""
    if cfg.get("regions") is None:
        for key in ("region_styles", "style_regions"):
            if cfg.get(key) is not None:
                raise NSTError(f"{key} changes nothing without regions=MASK: give the photo's mask, or drop {key}")
        return
    for key in ("region_styles", "style_regions"):
        if cfg.get(key) is not None and not isinstance(cfg[key], ListConfig):
            raise NSTError(f"{key}={cfg[key]!r} must be a list, one entry per "
                           f"{'region' if key == 'region_styles' else 'style image'}: e.g. {key}=[0,1]")  # fmt: skip
    if not hasattr(statistic, "region_target"):
        raise NSTError("regions need a statistic that can be taken per region: style_loss=gram or mean_std, not "
                       f"{cfg.style_loss._target_.rsplit('.', 1)[-1]}")  # fmt: skip
    if cfg.style_blend is not None:
        raise NSTError("style_blend mixes the styles everywhere, but with regions each region takes its own: drop "
                       "style_blend (region_styles says which region takes which)")  # fmt: skip
    image_paths(cfg.regions, "regions")
    for path in cfg.style_regions or []:
        if path is not None:
            image_paths(path, "style_regions")
    regions_of(cfg)(size_at(image_paths(cfg.content, "content")[0], 1024),
                       [size_at(p, 1024) for p in image_paths(cfg.style, "style")])  # fmt: skip


def check_images(cfg: DictConfig, content: str, styles: list[str], patch: int) -> None:
    """Each image decodes; at the first stage's size it is as large as the deepest layer needs (`patch` positions a
    side at each style layer: MRF's patches), and at every stage's it fits the device: before the run directory."""
    content_layers, style_layers = config_layers(cfg.layers, cfg.backbone.arch)
    arch = cfg.backbone.arch
    minimum = max(min_side([*content_layers, *style_layers], arch), patch * min_side(style_layers, arch))
    sizes = [int(s) for s in cfg.image.get("scales") or [cfg.image.size]]
    style_size = max(1, round(sizes[0] * cfg.image.style_scale))
    images = [("the content image", content, sizes[0]), *((f"style image {i + 1}", path, style_size)
                                                          for i, path in enumerate(styles))]  # fmt: skip
    for what, path, long_side in images:
        width, height = check_image(path, long_side)
        if min(width, height) < minimum:
            raise NSTError(
                f"{what} is {width}x{height} px, smaller than the {minimum} px the deepest "
                f"layer needs: raise image.size (or image.style_scale), or use shallower layers"
            )
    from nst.lbfgs import lbfgs_settings  # image runs only: `nst train`'s checks never import the optimiser

    lbfgs = lbfgs_settings(build(cfg.optimizer.torch, "optimizer.torch"))
    check_stages(arch, [*content_layers, *style_layers], Path(content), [Path(p) for p in styles], sizes,
                 float(cfg.image.style_scale), 1, lbfgs.history_size if lbfgs else 0,
                 str(cfg.trainer.get("accelerator", "auto")))  # fmt: skip
