"""What every run shares, optimising an image or training a network: its job, and its outcome recorded.

Both pipelines (nst/pipeline.py, nst/train/pipeline.py) claim the job's directory
(nst/run_dir.py) and write metrics.json as "running" before anything else, and
`record` the outcome however the run ends.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig
from pytorch_lightning.loggers import Logger, WandbLogger

from nst.loggers import finish_logger
from nst.memory import resident_memory_mb
from nst.outputs import write_json
from nst.run_dir import holder
from nst.sweeps import RunIdentity


@dataclass
class Job:
    """One run: its config, its output directory, the identity of its W&B run and its command-line overrides."""

    cfg: DictConfig
    out_dir: Path
    identity: RunIdentity | None = None
    overrides: Sequence[str] = ()


def record(jobs: Sequence[Job], loggers: Sequence[Logger | bool], results: Sequence[dict], started: float) -> None:
    """Each job's metrics.json and its logger closed, its W&B run marked failed where the job failed.

    Not in a directory another run holds: its metrics.json is that run's.
    """
    for index, (job, result) in enumerate(zip(jobs, results, strict=True)):
        if holder(job.out_dir):
            continue
        result = {**result, "wall_time_s": round(time.perf_counter() - started, 3)}
        result["resident_memory_mb"] = resident_memory_mb()
        logger = loggers[index] if index < len(loggers) else None
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            result["wandb_id"] = logger.experiment.id  # a resumed run continues this W&B run
        write_json(job.out_dir / "metrics.json", result)
        finish_logger(logger, result.get("error"))
