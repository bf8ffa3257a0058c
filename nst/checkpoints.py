"""What an interrupted run leaves behind, and where it resumes.

A signal ends a run after its current step with `resume.ckpt` (image, optimizer
state, counters, and its stage of a coarse-to-fine run) in its directory; a batch
leaves each of its runs such a checkpoint of its own (nst/batching.py).
"""

import json
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from nst import settings
from nst.branches import BRANCHES
from nst.errors import NSTError
from nst.outputs import atomic_write

RESUME_CHECKPOINT = "resume.ckpt"
LAST_CHECKPOINT = "checkpoints/last.ckpt"  # a training run's periodic checkpoint: where a killed one resumes


@dataclass(frozen=True)
class Stage:
    """Where an image run's fit sits in a coarse-to-fine run: its index and what the stages before it took.

    Saved in every checkpoint, so that an interrupted run resumes at its own stage.
    """

    index: int = 0
    evaluations_before: int = 0
    fit_time_before: float = 0.0


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
        training: bool = False,
    ):
        """`training`: a training run's network was interrupted, not an image; it resumes with `nst train`."""
        self.signum = signum
        self.failures = failures or {}  # runs of the batch (by index) that had failed before the signal: no checkpoint
        what, command = ("network", "nst train") if training else ("image", "nst")
        stopped = f"interrupted by {signal.Signals(signum).name} at step {step} of {steps}{where}"
        if len(out_dirs) == 1:
            saved = f"the {what} and optimizer state are saved: continue with `{command} resume={out_dirs[0]}`"
        else:
            dirs = ", ".join(str(d) for d in out_dirs)
            saved = "each run's image and optimizer state are saved in its directory: "
            saved += f"continue each alone with `nst resume=<directory>` ({dirs})"
        super().__init__(f"{stopped}; {saved}")


def stage_of(checkpoint: Path) -> Stage:
    """Where in a coarse-to-fine run its checkpoint was written (memory-mapped: the history is not read)."""
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True).get("stage")
    return Stage(**saved) if saved else Stage()


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _checkpoint_step(run_dir: Path) -> tuple[Path, int]:
    """The run's checkpoint (resume.ckpt, else a training run's last.ckpt) and its step, read without tensors."""
    checkpoint = run_dir / RESUME_CHECKPOINT
    if not checkpoint.is_file() and (run_dir / LAST_CHECKPOINT).is_file():
        checkpoint = run_dir / LAST_CHECKPOINT
    if not checkpoint.is_file():
        raise NSTError(f"resume={run_dir}: no {RESUME_CHECKPOINT} there; give the directory of an interrupted run")
    try:
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
        missing = [key for key in ("global_step", "state_dict", "optimizer_states", "loops") if key not in saved]
        if missing:
            raise ValueError(f"it holds no {missing[0]}")
        return checkpoint, int(saved["global_step"])
    except Exception as exc:
        raise NSTError(
            f"resume={run_dir}: its {RESUME_CHECKPOINT} cannot be read ({_first_line(exc)}): it is damaged, so the run "
            "cannot continue; its outputs so far are kept: start it again without resume="
        ) from None


def _not_finished(run_dir: Path) -> None:
    """A finished run has nothing to resume: its record and outputs stay as they are."""
    try:
        status = json.loads((run_dir / "metrics.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return  # no record (a killed run) or a damaged one: the checkpoint decides
    if status == "finished":
        raise NSTError(f"resume={run_dir} finished: nothing to continue, and its outputs are kept as they are; start "
                       "a new run to go further")  # fmt: skip


def _run_config(run_dir: Path, config: Path) -> DictConfig:
    """The config the run was started with (`.hydra/config.yaml`), or one line saying it cannot be read."""
    try:
        cfg = OmegaConf.load(config)
        if not isinstance(cfg, DictConfig) or "trainer" not in cfg:
            raise ValueError("not a run's config")
    except Exception as exc:
        raise NSTError(
            f"resume={run_dir}: its .hydra/config.yaml is missing or damaged ({_first_line(exc)}): the run cannot "
            "continue as it was configured; its outputs so far are kept: start it again without resume="
        ) from None
    return cfg


def _with_overrides(run_dir: Path, cfg: DictConfig, overrides: Sequence[str], steps_key: str) -> bool:
    """The overrides a resume takes, set in `cfg`; whether `steps_key` was among them."""
    changed = False
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if key == "resume" or key.startswith("hydra"):
            continue
        if key not in (steps_key, "trainer.enable_progress_bar") and not key.startswith("logger."):
            raise NSTError(
                f"resume={run_dir} continues the run as it was configured: it takes {steps_key}=N (to extend "
                f"it) and logger.* settings, not {key}; start a new run to change that"
            )
        try:
            OmegaConf.update(cfg, key, override.value(), force_add=True)
        except Exception as exc:
            raise NSTError(f"resume={run_dir}: {key} cannot be set ({_first_line(exc)})") from None
        changed |= key == steps_key
    return changed


def resumable(
    run_dir: Path, overrides: Sequence[str] = (), steps_key: str = "optimizer.steps", write: bool = True
) -> tuple[Path, DictConfig, Path]:
    """The directory, config and checkpoint of an interrupted run, its checkpoint read once to be sure it can resume.

    The checkpoint is resume.ckpt, written on a signal; where there is none, a training
    run's checkpoints/last.ckpt (written every `checkpoint_every` steps), so that a
    training killed outright still continues.

    A resumed run continues as it was configured. Of the command line's `overrides`
    it takes `steps_key` (`optimizer.steps`, or a training run's `trainer.max_steps`: to
    extend the run; the directory's config says so from then on), `logger.*` and the
    progress bar; anything else is refused, not silently ignored. The checkpoint is read
    with `weights_only=True`: a file in a shared run directory cannot run code.
    Nothing in the directory changes when the run cannot resume, nor with `write=False`
    (the refusal's check, before Hydra writes anything).
    """
    _not_finished(run_dir)
    checkpoint, step = _checkpoint_step(run_dir)
    config = run_dir / ".hydra" / "config.yaml"
    cfg = _run_config(run_dir, config)
    if OmegaConf.select(cfg, steps_key) is None:  # a training run given to `nst`, or an image run to `nst train`
        owner = next((r.command for r in BRANCHES.values() if OmegaConf.select(cfg, r.steps_key) is not None), None)
        command = " ".join(("nst", *([owner] if owner else [])))
        raise NSTError(f"resume={run_dir} is not a run of this command (its config has no {steps_key}): continue it "
                       f"with `{command} resume={run_dir}`")  # fmt: skip
    if _with_overrides(run_dir, cfg, overrides, steps_key):
        steps = OmegaConf.select(cfg, steps_key)
        next(s for s in settings.SETTINGS if s.key == steps_key).check(steps)
        if not int(steps) >= max(step, 1):
            raise NSTError(f"{steps_key}={steps} is below step {step}, where {run_dir} was interrupted")
        if write:
            atomic_write(config, OmegaConf.to_yaml(cfg).encode())  # only once the value is accepted
    cfg.resume = None
    return run_dir, cfg, checkpoint
