"""What a job that SLURM runs through submitit (`hydra/launcher=slurm`) does differently from a run at a prompt.

submitit starts each job of a sweep in a process of its own and waits for its
result. It asks SLURM for `SIGUSR2` a while before the time limit, and on that
signal requeues the job with the same overrides (up to `max_num_timeout` times).
nst catches the signal like SIGTERM: it finishes the step and writes
`resume.ckpt`, then hands the signal on to submitit, which requeues the job; the
requeued job finds the checkpoint in its directory and continues from it. A job
stopped by any other signal (`scancel --signal=TERM`, a preemption) returns as
interrupted instead of exiting, so that the sweep still collects every job's result.
"""

import os
import signal


def scheduled() -> bool:
    """Whether this process is a job that submitit started (on SLURM, or its local emulation)."""
    return os.environ.get("SUBMITIT_EXECUTOR", "") in ("slurm", "local")


def on_slurm() -> bool:
    """Whether this process is a job that submitit started on SLURM (not its local emulation)."""
    return os.environ.get("SUBMITIT_EXECUTOR") == "slurm"


def requeued() -> bool:
    """Whether this job ran before and SLURM requeued it (time limit, preemption): it may have a checkpoint."""
    return os.environ.get("SUBMITIT_EXECUTOR") == "slurm" and int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0


def requeue_signal() -> int:
    """The signal submitit requeues a job on: SIGUSR2 unless `SUBMITIT_PREEMPT_SIGNAL` names another."""
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2").upper()
    return int(getattr(signal, name if name.startswith("SIG") else f"SIG{name}", signal.SIGUSR2))


def hand_on(signum: int) -> None:
    """Deliver `signum` again, now to the handler that was there before nst's: submitit's requeues the job."""
    signal.raise_signal(signum)
