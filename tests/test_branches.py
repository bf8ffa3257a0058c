"""A run's life is shared: a new branch or network kind plugs in from outside nst/, and training stays apart."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nst import branches
from nst.configs import CONF_DIR, example
from nst.train import kinds
from tests.helpers import run_cli

PRIMARY = """
defaults:
  - _self_
  - backbone: vgg19
  - logger: none
  - override hydra/callbacks: nst
content: {content}
size: 32
layer: relu2_1
lr: 0.05
steps: 6
seed: 0
judge: false
verbose: false
resume: null
objective: null
hydra:
  searchpath: [file://{conf}]
  job:
    name: run
backbone:
  weights: random
"""


@pytest.fixture
def inversion_branch(tmp_path: Path):
    """The tests' `Inversion` branch registered as `nst invert`, with its own primary config."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "inversion.yaml").write_text(PRIMARY.format(content=example("tubingen.jpg"), conf=CONF_DIR))
    registration = branches.Registration(
        "invert", "inversion", "tests.branch_example:check_inversion", "tests.branch_example:InversionBranch",
        "steps", "inversion", config_dir=conf,
    )  # fmt: skip
    branches.register(registration)
    yield registration
    del branches.BRANCHES["invert"]


def test_a_branch_defined_outside_nst_runs_through_the_shared_life(tmp_path, capsys, inversion_branch):
    code, err = run_cli(tmp_path, capsys, "invert", f"hydra.run.dir={tmp_path / 'run'}")
    assert code == 0, err
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["kind"] == "inversion"
    rows = (run / "history.csv").read_text().splitlines()
    assert rows[0].startswith("step,evaluations,time_s,total") and len(rows) == 7
    assert float(rows[-1].split(",")[-1]) < float(rows[1].split(",")[-1])  # the features came closer
    assert (run / "inverted.png").is_file() and not (run / ".nst.lock").exists()


def test_a_new_branch_s_bad_setting_is_refused_before_anything_is_written(tmp_path, capsys, inversion_branch):
    code, err = run_cli(tmp_path, capsys, "invert", "steps=0", f"hydra.run.dir={tmp_path / 'run'}")
    assert code == 2 and err.strip() == "nst: error: steps=0 must be an integer >= 1"
    assert not (tmp_path / "run").exists()


@pytest.fixture
def tiny_kind():
    from tests.branch_example import TinyNet

    kind = kinds.register(kinds.NetworkKind("tiny", TinyNet, kinds.StyleNetTraining))
    yield kind
    del kinds.KINDS["tiny"]


def test_a_network_kind_defined_outside_nst_trains_saves_and_stylizes(tmp_path, capsys, tiny_kind):
    run = tmp_path / "run"
    code, err = run_cli(tmp_path, capsys, "train", "debug=tiny", "~network", "+network._target_=" + tiny_kind.target,
                        "+network.width=3", f"hydra.run.dir={run}")  # fmt: skip
    assert code == 0, err
    saved = torch.load(run / "model.pt", weights_only=True)
    assert saved["kind"] == "tiny" and saved["settings"] == {"width": 3}
    out = tmp_path / "styled.png"
    code, err = run_cli(tmp_path, capsys, "stylize", f"model={run}", f"content={example('tubingen.jpg')}",
                        "size=40", f"out={out}")  # fmt: skip
    assert code == 0, err
    assert out.is_file()


def test_a_model_file_naming_an_unknown_kind_is_refused_in_one_line(tmp_path, capsys, tiny_kind):
    run = tmp_path / "run"
    run_cli(tmp_path, capsys, "train", "debug=tiny", "~network", "+network._target_=" + tiny_kind.target,
            f"hydra.run.dir={run}")  # fmt: skip
    del kinds.KINDS["tiny"]
    code, err = run_cli(tmp_path, capsys, "stylize", f"model={run}", f"content={example('tubingen.jpg')}",
                        f"out={tmp_path / 'x.png'}")  # fmt: skip
    kinds.register(tiny_kind)
    assert code == 2 and "names the network kind 'tiny', which this nst does not know" in err
    assert len(err.strip().splitlines()) == 1


def test_training_imports_no_image_optimisation_module():
    """`nst train`'s whole import closure, in a fresh interpreter: the pipeline, the CLI and stylize."""
    probe = (
        "import sys, nst.cli, nst.train.pipeline, nst.train.stylize, nst.lifecycle; "
        "print(sorted(m for m in sys.modules if m in {'nst.module', 'nst.lbfgs', 'nst.batching', 'nst.pipeline'}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
