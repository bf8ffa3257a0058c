"""What nst changes in the process it runs in, all in one place: `configure`, and `freeze_imports` for each run.

nst/cli.py calls `configure` when it is imported: the `nst` command, and the worker processes
of submitit's launchers, which import the CLI's task function rather than run `main`.
"""

import gc
import logging
import warnings

from omegaconf import OmegaConf

from nst import command_line, settings
from nst.configs import example, photos, styles


def _not_lightning_advice(record: logging.LogRecord) -> bool:
    """Drop Lightning's advert for its logging service and its advice, on CUDA, to run matmuls in TF32.

    That advice is wrong here: the matmuls are the Gram matrices, kept in fp32 on purpose;
    nst gives TF32 to the convolutions only (`speed.tf32`).
    """
    message = str(record.msg)
    return not (message.startswith("💡 Tip") or "that has Tensor Cores" in message)


def configure() -> None:
    """The `${example:NAME}`, `${photos:}` and `${styles:…}` config resolvers, Lightning's warnings that never
    apply to nst kept quiet, and logging that survives a full disk."""
    OmegaConf.register_new_resolver("example", example, replace=True)
    OmegaConf.register_new_resolver("photos", photos, replace=True)
    OmegaConf.register_new_resolver("styles", styles, replace=True)
    OmegaConf.register_new_resolver("settings", settings.help_lines, replace=True)  # `nst --help`'s table
    OmegaConf.register_new_resolver("groups", command_line.groups_help, replace=True)  # and its groups
    # A one-item dataloader needs no workers; the frozen backbone stays in eval mode on purpose; Lightning's use
    # of a pytree check that newer torch deprecates; the empty dataloader of `optimizer.steps=0`, meant.
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*module\\(s\\) in eval mode at the start of training.*")
    warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")
    warnings.filterwarnings("ignore", ".*Total length of `(DataLoader|CombinedLoader)` across ranks is zero.*")
    # A handler that cannot write (run.log on a full disk) drops the record instead of printing a traceback for
    # every line; the console handler still shows it.
    logging.raiseExceptions = False
    rank_zero = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    if _not_lightning_advice not in rank_zero.filters:
        rank_zero.addFilter(_not_lightning_advice)


def freeze_imports() -> None:
    """Keep every object that exists now, the imported modules' above all, out of later garbage collections.

    Called by each run, effective once per process. Those objects live as long as the
    process, yet every full collection walked all of them (torch and Lightning bring
    hundreds of thousands): the collections between the jobs of a sweep and the last
    one at exit cost seconds (benchmarks/results.md, start-up). Garbage made later is
    collected as before.
    """
    if not gc.get_freeze_count():
        gc.freeze()


def console(verbose: bool) -> None:
    """What the console shows of Lightning: its banners (GPU available, `max_steps` reached) only when `verbose`.

    nst says where a run is and how it went itself; the banners stay in Lightning's
    logger at INFO, so `verbose=true` (or `hydra.verbose=true`) brings them back.
    """
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.INFO if verbose else logging.WARNING)
    action = "default" if verbose else "ignore"
    # Lightning's hint on machines that have SLURM's srun; nst runs one process per job whatever the cluster.
    warnings.filterwarnings(action, ".*The `srun` command is available on your system but is not used.*")
    # A resumed run restores its step inside the epoch exactly (tests/test_interruptions.py): the result is the same.
    warnings.filterwarnings(action, ".*resuming from a checkpoint that ended before the epoch ended.*")
