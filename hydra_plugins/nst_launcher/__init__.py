"""nst's batching launcher, where Hydra looks for plugins (it only loads them from `hydra_plugins`)."""

from nst.launcher import BatchedLauncher as _BatchedLauncher


class BatchedLauncher(_BatchedLauncher):
    """`hydra/launcher=batched`: see nst/launcher.py."""
