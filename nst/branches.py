"""The branches the `nst` command runs, registered in one place: a command word, a primary config, checks and steps.

    nst …          image optimisation    conf/config.yaml   nst/checks.py        nst/pipeline.py
    nst train …    a network trained     conf/train.yaml    nst/train/checks.py  nst/train/pipeline.py

A new branch is a folder with its steps (an object with the `Branch` steps of
nst/lifecycle.py), a primary config and one `register` call; the command line, the
early refusal, resume and the sweep verdict then treat it like the others. The
checks and the steps are named as `module:attribute` and imported only when a run
needs them: `nst --help` and a refused setting never import torch.
"""

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nst.configs import CONF_DIR


@dataclass(frozen=True)
class Registration:
    """`command`: the word after `nst` (None: plain `nst`); `config_name`: its primary config in `config_dir`;
    `check`: `module:function(cfg, overrides)` refusing a bad setting in one line; `branch`: `module:Class` of its
    steps; `steps_key`: the setting a resume may raise to extend the run; `settings`: which rows of nst/settings.py
    it reads ("image" or "train")."""

    command: str | None
    config_name: str
    check: str
    branch: str
    steps_key: str
    settings: str
    config_dir: Path = CONF_DIR

    def checker(self) -> Any:
        return _attribute(self.check)

    def steps(self) -> Any:
        """A new instance of the branch's steps."""
        return _attribute(self.branch)()


def _attribute(dotted: str) -> Any:
    module, _, name = dotted.partition(":")
    return getattr(importlib.import_module(module), name)


BRANCHES: dict[str | None, Registration] = {}


def register(registration: Registration) -> Registration:
    BRANCHES[registration.command] = registration
    return registration


def by_config(config_name: str | None) -> Registration:
    """The branch whose primary config is `config_name` (Hydra's callbacks know a run by it)."""
    return next((r for r in BRANCHES.values() if r.config_name == config_name), BRANCHES[None])


register(Registration(None, "config", "nst.checks:check_job", "nst.pipeline:ImageBranch", "optimizer.steps", "image"))
register(Registration("train", "train", "nst.train.checks:check_training", "nst.train.pipeline:TrainingBranch",
                      "trainer.max_steps", "train"))  # fmt: skip
