"""nst's batching launcher, where Hydra looks for plugins (it only loads them from `hydra_plugins`).

Hydra imports every plugin module to list them, for `--help` and `--cfg` too; this one
imports torch and the pipeline (nst/launcher.py) only when a sweep is launched with it,
as Hydra's own launchers do.
"""

from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from nst import wandb_preload


class BatchedLauncher(Launcher):
    """`hydra/launcher=batched`: see nst/launcher.py."""

    def __init__(self, batch_size: int = 8) -> None:
        self.batch_size = batch_size
        self.impl: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        wandb_preload.preload(config.get("logger"))  # before torch, as a single run does
        from nst.launcher import BatchedLauncher as Impl

        self.impl = Impl(self.batch_size)
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        return self.impl.launch(job_overrides, initial_job_idx)
