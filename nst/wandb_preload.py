"""wandb imported before torch and Lightning, where its slowest import costs a third as much.

`wandb.init` imports `wandb.apis.public` (for W&B Launch's job inputs) whatever the
run's settings. Its pydantic models look their source up in every loaded module,
and after torch and Lightning there are thousands (wandb#10898): a run that imports
it first opens its W&B run about a second sooner (benchmarks/results.md, start-up).
"""

from typing import Any


def uses_wandb(logger_cfg: Any) -> bool:
    """Whether the `logger` config opens a W&B run (not `logger=none`, another logger or mode=disabled)."""
    target = str(logger_cfg.get("_target_", "")) if logger_cfg else ""
    return target.endswith("WandbLogger") and logger_cfg.get("mode") != "disabled"


def preload(logger_cfg: Any) -> None:
    """Import wandb and its public API now, if the run logs to W&B; call before importing torch."""
    if uses_wandb(logger_cfg):
        import wandb.apis.public  # noqa: F401
