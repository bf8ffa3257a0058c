"""What the tests share: running `nst` as a user does, and one run through the pipeline."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig

from nst.cli import main
from nst.pipeline import Job, run

# The `nst` command's tiny run: conf/debug/tiny.yaml, at 48 px with W&B on, 4 steps of 2 evaluations.
TINY = ["debug=tiny", "logger=wandb", "image.size=48", "optimizer.steps=4", "optimizer.torch.max_iter=2"]
TINY += ["snapshot_every=2"]


def nst(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`nst ARGS` in a subprocess, W&B's own environment variables cleared unless given."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "nst", *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=300
    )


def run_nst(tmp_path: Path, capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    """`nst debug=tiny ARGS` as the console script runs it, in this process; its exit code and stderr."""
    old_argv, old_cwd = sys.argv, os.getcwd()
    tiny = ["debug=tiny", "snapshot_every=0", f"hydra.run.dir={tmp_path / 'run'}"]
    sys.argv = ["nst", *tiny, *args]
    os.chdir(tmp_path)
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)
    return code, capsys.readouterr().err


def train(cfg: DictConfig, out_dir: Path, resume: Path | None = None) -> dict[str, Any]:
    """One run of `cfg` through the pipeline, into `out_dir`; its metrics."""
    (metrics,) = run([Job(cfg, Path(out_dir))], resume)
    return metrics
