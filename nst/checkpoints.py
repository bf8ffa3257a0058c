"""What an interrupted run leaves behind, and where it resumes.

A signal ends a run after its current step with `resume.ckpt` (image, optimizer
state, counters, and its stage of a coarse-to-fine run) in its directory; a batch
leaves each of its runs such a checkpoint of its own (nst/batching.py).
"""

import signal
from collections.abc import Sequence
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from nst.errors import NSTError
from nst.module import Stage

RESUME_CHECKPOINT = "resume.ckpt"


class Interrupted(NSTError):
    """The run, or each run of a batch, was stopped by a signal after saving a checkpoint it can resume from."""

    def __init__(
        self,
        signum: int,
        step: int,
        steps: int,
        out_dirs: Sequence[Path],
        where: str = "",
        failures: dict[int, str] | None = None,
    ):
        self.signum = signum
        self.failures = failures or {}  # runs of the batch (by index) that had failed before the signal: no checkpoint
        stopped = f"interrupted by {signal.Signals(signum).name} at step {step} of {steps}{where}"
        if len(out_dirs) == 1:
            saved = f"the image and optimizer state are saved: continue with `nst resume={out_dirs[0]}`"
        else:
            dirs = ", ".join(str(d) for d in out_dirs)
            saved = "each run's image and optimizer state are saved in its directory: "
            saved += f"continue each alone with `nst resume=<directory>` ({dirs})"
        super().__init__(f"{stopped}; {saved}")


def stage_of(checkpoint: Path) -> Stage:
    """Where in a coarse-to-fine run its checkpoint was written (memory-mapped: the history is not read)."""
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False, mmap=True).get("stage")
    return Stage(**saved) if saved else Stage()


def resumable(run_dir: Path) -> tuple[Path, DictConfig]:
    """The directory and config of an interrupted run, checked to hold a checkpoint to resume from."""
    if not (run_dir / RESUME_CHECKPOINT).is_file():
        raise NSTError(f"resume={run_dir}: no {RESUME_CHECKPOINT} there; give the directory of an interrupted run")
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    cfg.resume = None
    return run_dir, cfg
