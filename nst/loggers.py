"""Building the configured experiment logger, and logging images through whichever it is.

W&B never prompts: without an API key an online run falls back to offline mode
and says how to sync it later (wandb/wandb#592: jobs stuck at the login prompt).
"""

import logging
import netrc
import os
import sys
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, TensorBoardLogger, WandbLogger
from torch import Tensor

from nst.configs import build
from nst.images import to_pil

log = logging.getLogger(__name__)


class ResilientWandbLogger(WandbLogger):
    """Lightning's W&B logger that never takes a run down with it.

    If W&B fails mid-run (its service process crashes, the disk fills), the run goes
    on without it: one warning, no more W&B calls; history.csv and metrics.json still
    get every figure.
    """

    failed = False

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:  # Lightning always passes it; wandb 0.31 warns it is deprecated
            self._wandb_init.pop("anonymous", None)

    def _guard(self, action: Callable[[], object]) -> None:
        if self.failed:
            return
        try:
            action()
        except Exception as exc:
            self.failed = True
            # W&B's client keeps a socket to its service, which a full disk or a crash has ended: asyncio would
            # warn at every one of its sends.
            logging.getLogger("asyncio").setLevel(logging.ERROR)
            log.warning(
                "W&B stopped working (%s: %s); the run goes on without it, its figures are still written "
                "to history.csv and metrics.json",
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
            )

    def log_metrics(self, *args: Any, **kwargs: Any) -> None:
        self._guard(partial(super().log_metrics, *args, **kwargs))

    def log_hyperparams(self, *args: Any, **kwargs: Any) -> None:
        self._guard(partial(super().log_hyperparams, *args, **kwargs))

    def log_image(self, *args: Any, **kwargs: Any) -> None:
        self._guard(partial(super().log_image, *args, **kwargs))

    def log_summary(self, figures: Mapping[str, float]) -> None:
        self._guard(lambda: self.experiment.summary.update(dict(figures)))


def _wandb_api_key_present() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host or "") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def build_logger(
    cfg: DictConfig | None,
    save_dir: Path,
    identity: Mapping[str, Any] | None = None,
    alongside_others: bool = False,
    verbose: bool = False,
) -> Logger | bool:
    """The logger of the `logger` config group (False for `logger=none`), writing under `save_dir`.

    A W&B run takes its name, group and tags from `identity` where the config leaves them empty.
    With `alongside_others` (the runs of a batch, open at once in one process) each
    W&B run is its own run object rather than wandb's one global run.
    """
    if not cfg or "_target_" not in cfg:
        return False
    overrides: dict = {"save_dir": str(save_dir)}
    if cfg._target_.endswith("WandbLogger"):
        overrides.update({k: v for k, v in (identity or {}).items() if not cfg.get(k)})
        mode = cfg.get("mode") or "offline"
        if mode == "online" and not _wandb_api_key_present():
            log.warning(
                "W&B: no API key (WANDB_API_KEY or `wandb login`), logging offline instead; "
                "sync later with `wandb sync %s/wandb/offline-run-*`",
                save_dir,
            )
            mode = "offline"
        overrides["mode"] = mode
        if verbose and cfg.get("settings"):
            overrides["settings"] = {**OmegaConf.to_container(cfg.settings), "quiet": False}
        if alongside_others:
            overrides["reinit"] = "create_new"
        return _start_wandb(cfg, overrides, save_dir)
    return build(cfg, "logger", **overrides)


def _start_wandb(cfg: DictConfig, overrides: dict, save_dir: Path) -> WandbLogger:
    """Open the W&B run now, so an unreachable server means offline logging, not a failed run."""
    logger = build(cfg, "logger", **overrides)
    try:
        logger.experiment  # noqa: B018 - starts wandb.init
    except Exception as exc:
        if overrides["mode"] == "offline":
            raise
        log.warning(
            "W&B could not start online (%s); logging offline instead: sync later with "
            "`wandb sync %s/wandb/offline-run-*`",
            str(exc).splitlines()[0],
            save_dir,
        )
        wandb_finish("could not connect")
        logger = build(cfg, "logger", **{**overrides, "mode": "offline"})
        logger.experiment  # noqa: B018
    return logger


def log_images(logger: Logger | bool, images: dict[str, Tensor], step: int) -> None:
    """Log named images (first of each batch) at `step`; loggers without image support skip them."""
    if isinstance(logger, WandbLogger):
        for key, image in images.items():
            logger.log_image(key=key, images=[to_pil(image)], step=step)
    elif isinstance(logger, TensorBoardLogger):
        for key, image in images.items():
            logger.experiment.add_image(key, image.detach()[0].clamp(0, 1).cpu(), global_step=step)


def log_summary(logger: Logger | bool, figures: Mapping[str, float]) -> None:
    """A run's final figures as its W&B summary, what sweep tables and dashboards compare.

    W&B's summary otherwise holds each key's last logged value: for the losses, the last
    step's, not those of final.png. Other loggers keep the curves; metrics.json has the figures.
    """
    if isinstance(logger, ResilientWandbLogger):
        logger.log_summary(figures)
    elif isinstance(logger, WandbLogger):
        logger.experiment.summary.update(dict(figures))


def finish_logger(logger: Logger | bool | None, error: str | None) -> None:
    """Close a run's logger: its W&B run marked failed with its error where it failed; files flushed."""
    if isinstance(logger, WandbLogger):
        wandb_finish(error, logger.experiment if logger._experiment is not None else None)
    else:
        wandb_finish(error)  # a W&B run left open by a logger that failed while starting
        if logger:
            logger.finalize("success" if error is None else "failed")


def wandb_finish(error: str | None, run: Any = None) -> None:
    """Close a W&B run (by default wandb's global one), marking a failure as such with its error."""
    wandb = sys.modules.get("wandb")
    run = run if run is not None else getattr(wandb, "run", None)
    if run is None:
        return
    try:
        if error is not None:
            run.summary["error"] = error
        run.finish(exit_code=0 if error is None else 1)
    except Exception as exc:  # a crashed W&B service must not turn a finished run into a failed one
        log.warning("W&B could not close its run (%s); the run's outputs on disk are complete", type(exc).__name__)
