"""What a run reports of its memory."""

import subprocess
import sys

import torch

from nst.memory import resident_memory_mb


def test_a_run_started_from_a_large_process_reports_its_own_peak_memory():
    """getrusage's ru_maxrss survives fork and exec: a child would report its parent's peak as its own."""
    ballast = torch.ones(2**30 // 4)  # 1 GiB held by this process (pytest's) while the child runs
    ballast += 1
    child = "import torch; from nst.memory import peak_memory_mb; print(peak_memory_mb(torch.device('cpu'))[0])"
    peak = float(subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True).stdout)
    assert peak < resident_memory_mb() - 512, (peak, resident_memory_mb())
