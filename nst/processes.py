"""Which process of a multi-process (DDP) training this is: only the first writes the run's outputs.

Lightning's launcher restarts the command once per extra device, with LOCAL_RANK
and NODE_RANK set; SLURM starts one task per device itself, each with its
SLURM_PROCID. Every process runs the same checks and the same training; the
first alone claims the run directory, opens the logger, validates and writes.
"""

import os

RANK_VARIABLES = ("LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")


def first_process() -> bool:
    """True unless a launcher started this process as another rank than 0."""
    return all(os.environ.get(name, "0") == "0" for name in RANK_VARIABLES)
