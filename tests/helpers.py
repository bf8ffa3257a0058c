"""What the tests share: running `nst` as a user does, one run through the pipeline, and W&B's record of a run."""

import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig

from nst.cli import main
from nst.pipeline import Job, run

# The `nst` command's tiny run: conf/debug/tiny.yaml at 48 px, 4 steps of 2 evaluations, no W&B, no judge.
TINY = ["debug=tiny", "image.size=48", "optimizer.steps=4", "snapshot_every=2"]
# The same with what tests of W&B and of the judge's figures assert on: a W&B run (offline) and the judge.
TINY_WANDB = [*TINY, "logger=wandb", "judge=true"]


def required(marker: str) -> bool:
    """Whether tests marked `marker` must run here rather than skip (CI sets NST_REQUIRE=slurm,browser)."""
    return marker in os.environ.get("NST_REQUIRE", "").split(",")


def nst(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`nst ARGS` in a subprocess, W&B's own environment variables cleared unless given."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "nst", *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=300
    )


def run_nst(tmp_path: Path, capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    """`nst debug=tiny ARGS` as the console script runs it, in this process; its exit code and stderr."""
    tiny = ["debug=tiny", "snapshot_every=0", f"hydra.run.dir={tmp_path / 'run'}"]
    return run_cli(tmp_path, capsys, *tiny, *args)


def run_cli(cwd: Path, capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    """`nst ARGS` as the console script runs it, in this process, started in `cwd`; its exit code and stderr."""
    code, _, err = run_cli_output(cwd, capsys, *args)
    return code, err


def run_cli_output(cwd: Path, capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """`run_cli` with what it wrote to stdout too (Hydra's log lines go there)."""
    old_argv, old_cwd = sys.argv, os.getcwd()
    sys.argv = ["nst", *args]
    os.chdir(cwd)
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def train(cfg: DictConfig, out_dir: Path, resume: Path | None = None) -> dict[str, Any]:
    """One run of `cfg` through the pipeline, into `out_dir`; its metrics."""
    (metrics,) = run([Job(cfg, Path(out_dir))], resume)
    return metrics


@dataclass
class WandbRun:
    """What an offline W&B run logged, as W&B's own reader of its transaction log shows it."""

    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    name: str = ""
    group: str = ""
    tags: list[str] = field(default_factory=list)


def wandb_run(run_dir: Path, wait_s: float = 30) -> WandbRun:
    """`wandb leet inspect --summary --json` and `--json` of an offline run directory (`wandb/offline-run-*`).

    W&B's service may still be writing the log when the run's process has ended:
    read again until it has its exit record (or `wait_s` has passed).
    """
    deadline = time.monotonic() + wait_s
    while True:
        summary = json.loads(_leet(run_dir, "--summary", "--json"))
        if summary.get("exit_code") is not None or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    records = [json.loads(line) for line in _leet(run_dir, "--json").splitlines() if line.strip()]
    run = next((r["run"] for r in records if r.get("type") == "run"), {})
    return WandbRun(
        config=summary.get("config") or {},
        history=[r["history"]["item"] for r in records if r.get("type") == "history"],
        summary=summary.get("summary") or {},
        exit_code=summary.get("exit_code"),
        name=summary.get("name", ""),
        group=run.get("run_group", ""),
        tags=list(summary.get("tags") or []),
    )


def wandb_exit_code(run_dir: Path, wait_s: float = 30) -> int | None:
    """The exit code an offline W&B run recorded (one `wandb leet` call, not `wandb_run`'s two)."""
    deadline = time.monotonic() + wait_s
    while True:
        code = json.loads(_leet(run_dir, "--summary", "--json")).get("exit_code")
        if code is not None or time.monotonic() > deadline:
            return code
        time.sleep(0.2)


def _leet(run_dir: Path, *flags: str) -> str:
    done = subprocess.run(
        ["wandb", "leet", "inspect", *flags, str(run_dir)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def signal_at(monkeypatch: pytest.MonkeyPatch, step: int, signum: int = signal.SIGINT, fit: int = 1) -> None:
    """Send this process `signum` once step `step` of its `fit`-th fit (a coarse-to-fine run's stage) has ended, as
    Ctrl-C would land then: an event, no race against a long run."""
    from nst.callbacks import Interruption

    original_start, original_end = Interruption.on_train_start, Interruption.on_train_batch_end
    fits = [0]

    def starting(self: Interruption, trainer: Any, module: Any) -> None:
        fits[0] += 1
        original_start(self, trainer, module)

    def at_step(self: Interruption, trainer: Any, module: Any, *args: Any) -> None:
        if fits[0] == fit and trainer.global_step == step and self.signals.received is None:
            os.kill(os.getpid(), signum)
        original_end(self, trainer, module, *args)

    monkeypatch.setattr(Interruption, "on_train_start", starting)
    monkeypatch.setattr(Interruption, "on_train_batch_end", at_step)


def claim_huge(png: Path) -> Path:
    """Rewrite a PNG's header to claim 30000 x 30000 px (a decompression bomb), its checksum fixed; the path."""
    data = bytearray(png.read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", 30000, 30000)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    png.write_bytes(bytes(data))
    return png
