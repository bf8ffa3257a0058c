"""W&B never takes a run down: an unreachable server, no API key, a crashed service."""

import json
import os
import signal
import subprocess
import sys
import time

from tests.helpers import TINY_WANDB, run_cli_output, wandb_exit_code


def test_an_unreachable_wandb_server_means_offline_logging_not_a_failed_run(tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    env = {"WANDB_MODE": "online", "WANDB_BASE_URL": "http://127.0.0.1:9", "WANDB_API_KEY": "x" * 40}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    started = time.monotonic()
    code, out, err = run_cli_output(tmp_path, capsys, *TINY_WANDB, "logger.settings.init_timeout=3",
                                    f"hydra.run.dir={run_dir}")  # fmt: skip
    assert code == 0, err
    assert time.monotonic() - started < 120
    assert "logging offline instead: sync later with `wandb sync" in out + err
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    assert wandb_exit_code(offline) == 0
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "finished"


def test_online_mode_without_an_api_key_logs_offline_and_never_prompts(tmp_path, capsys, monkeypatch):
    for key in [k for k in os.environ if k.startswith("WANDB_")]:
        monkeypatch.delenv(key)
    for key, value in {"WANDB_MODE": "online", "HOME": str(tmp_path), "NETRC": str(tmp_path / "none")}.items():
        monkeypatch.setenv(key, value)
    code, out, err = run_cli_output(tmp_path, capsys, *TINY_WANDB, f"hydra.run.dir={tmp_path / 'run'}")
    assert code == 0, err
    assert "no API key" in out + err
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))


def test_a_wandb_service_crash_mid_run_does_not_fail_the_run(tmp_path):
    run_dir = tmp_path / "run"
    settings = [o for o in TINY_WANDB if not o.startswith(("optimizer.steps", "snapshot_every"))]
    settings += ["optimizer.steps=20", "snapshot_every=1"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    command = [sys.executable, "-m", "nst", *settings, f"hydra.run.dir={run_dir}"]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 120
    while not (run_dir / "snapshots" / "step_00003.png").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    service = subprocess.run(["pgrep", "-P", str(process.pid), "-f", "wandb-core"], capture_output=True, text=True)
    assert service.stdout.split(), "the W&B service process was not found"
    for pid in service.stdout.split():
        os.kill(int(pid), signal.SIGKILL)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    assert "W&B stopped working" in output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["steps"] == 20
    assert (run_dir / "final.png").is_file()
