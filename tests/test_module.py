"""The Lightning module: what it optimises, and that the optimisation works."""

from functools import partial
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch._dynamo.utils import counters
from torch.utils.data import DataLoader

from nst.backbones import VGG
from nst.criterion import LossWeights, PerceptualLoss
from nst.errors import NSTError
from nst.fastpath import FastPath
from nst.lbfgs import BatchedLBFGS, TorchLBFGS, build_optimizer, restarts
from nst.module import StyleTransfer

LAYERS = {"content": {"relu2_1": 1.0}, "style": {"relu1_1": 0.5, "relu2_1": 0.5}}


def make_module(
    optimizer, convention: str = "jcjohnson", fast: FastPath | None = None, restart_stuck: bool = False, **weights
) -> StyleTransfer:
    torch.manual_seed(0)
    content, style = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 40, 24)
    loss = {"content_weight": 1.0, "style_weight": 1e3, "tv_weight": 0.0, **weights}
    weights = LossWeights.of([(loss, LAYERS["content"], LAYERS["style"])])
    return StyleTransfer(
        PerceptualLoss(VGG("vgg19", weights="random"), weights, convention=convention),
        content,
        [style],
        init=[torch.rand(1, 3, 32, 32)],
        optimizer=partial(build_optimizer, optimizer, restart_stuck=restart_stuck),
        fast=fast,
    )


def fit(module: StyleTransfer, steps: int, ckpt_path: Path | None = None) -> pl.Trainer:
    trainer = pl.Trainer(
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(module, DataLoader(range(steps), batch_size=None), ckpt_path=ckpt_path)
    return trainer


@pytest.mark.parametrize(
    ("optimizer", "steps", "evaluations"),
    [
        (partial(torch.optim.LBFGS, max_iter=5, tolerance_grad=-1, tolerance_change=-1), 3, 15),
        (partial(torch.optim.Adam, lr=0.05), 15, 15),
    ],
    ids=["lbfgs", "adam"],
)
def test_the_total_loss_decreases(optimizer, steps, evaluations):
    module = make_module(optimizer)
    module.on_fit_start()
    with torch.no_grad():
        before = module.evaluate()["total"].item()
    fit(module, steps)
    after = module.last_terms["total"].item()
    assert after < 0.5 * before
    assert module.evaluations == evaluations


@pytest.mark.parametrize("compact", [False, True], ids=["torch-lbfgs", "batched-lbfgs"])
def test_the_reported_losses_are_those_of_the_image_the_fit_leaves(compact):
    """L-BFGS moves the image once more after its last evaluation: final.png's losses are measured, not the last."""
    lbfgs = partial(torch.optim.LBFGS, max_iter=5, tolerance_grad=-1, tolerance_change=-1)
    module = make_module(lbfgs, fast=FastPath(compact_lbfgs=compact))
    fit(module, 2)
    with torch.no_grad():
        measured = module.evaluate()
    assert module.evaluations == 10
    for key, value in measured.items():
        assert torch.equal(module.last_terms[key], value), key
    assert module.terms_of(0)["total"] == measured["total"].item()


def test_a_last_move_that_made_the_loss_worse_is_taken_back():
    """Adam's one step of lr 5 throws the image far out of [0, 1]; the run ends at its start, the lowest loss seen."""
    module = make_module(partial(torch.optim.Adam, lr=5.0))
    start = module.image.detach().clone()
    module.on_fit_start()
    with torch.no_grad():
        start_loss = module.evaluate()["total"]
    fit(module, 1)
    assert torch.equal(module.image.detach(), start)
    assert torch.equal(module.last_terms["total"], start_loss)


def test_measuring_the_final_image_compiles_nothing_more(monkeypatch):
    """With speed.compile, one graph each for the content and style targets and one for the steps; no fourth."""
    monkeypatch.setattr(torch, "compile", partial(torch.compile, backend="eager"))  # dynamo's guards, no codegen
    torch._dynamo.reset()
    counters.clear()
    fit(make_module(partial(torch.optim.Adam, lr=0.05), fast=FastPath(compile=True)), 2)
    assert counters["stats"]["unique_graphs"] == 3


def test_the_image_is_the_only_trainable_parameter_and_the_backbone_is_cut():
    module = make_module(partial(torch.optim.Adam, lr=0.05))
    trainable = [name for name, p in module.named_parameters() if p.requires_grad]
    assert trainable == ["images.0"]
    assert list(module.criterion.encoder.layers._modules)[-1] == "relu2_1"


def test_targets_are_encoded_once_per_fit_and_one_pass_feeds_every_loss():
    module = make_module(partial(torch.optim.Adam, lr=0.05))
    inputs = []
    module.criterion.encoder.register_forward_pre_hook(lambda _, args: inputs.append(tuple(args[0].shape)))
    fit(module, 4)
    assert inputs.count((1, 3, 40, 24)) == 1  # the style image
    # the content image, one pass per evaluation, one measuring the image the fit leaves
    assert inputs.count((1, 3, 32, 32)) == 1 + 4 + 1


def test_every_loss_term_is_reported_per_layer():
    module = make_module(partial(torch.optim.Adam, lr=0.05), tv_weight=1.0)
    module.on_fit_start()
    terms = module.evaluate()
    assert set(terms) == {"content/relu2_1", "style/relu1_1", "style/relu2_1", "content", "style", "tv", "total"}
    total = terms["content"] + 1e3 * terms["style"] + terms["tv"]
    assert torch.allclose(terms["total"], total)


def test_tv_that_no_run_weighs_is_reported_but_kept_out_of_the_gradient():
    """nst's default tv_weight is 0: the evaluation should not pay a backward pass for it."""
    adam = partial(torch.optim.Adam, lr=0.05)
    for tv_weight in (0.0, 1e-3):
        module = make_module(adam, tv_weight=tv_weight)
        module.on_fit_start()
        terms = module.evaluate()
        assert terms["tv"].item() > 0 and terms["tv"].requires_grad == (tv_weight > 0)
        weighed = terms["content"] + 1e3 * terms["style"] + tv_weight * terms["tv"]
        assert torch.allclose(terms["total"], weighed)


def test_the_fast_path_is_on_for_cuda_only_unless_asked_and_bad_values_are_refused():
    auto = FastPath()
    on, off = {"channels_last": True, "tf32": True, "compact_lbfgs": True}, {"bf16": False, "compile": False}
    assert auto.for_device(torch.device("cuda")) == FastPath(**on, **off)
    assert auto.for_device(torch.device("cpu")) == FastPath(**dict.fromkeys(on, False), **off)
    with pytest.raises(NSTError, match=r"speed\.compile='yes': choose auto, true or false"):
        FastPath(compile="yes")


def test_compact_lbfgs_runs_a_single_lbfgs_job_through_batched_lbfgs_to_the_same_image():
    lbfgs = partial(torch.optim.LBFGS, max_iter=5, history_size=4, tolerance_grad=-1, tolerance_change=-1)
    # A loss large enough that every curvature pair passes sᵀy > 1e-10 by far. At 1/1e3 the first pairs sit at
    # that threshold (8.7e-11, 1.2e-10), where rounding decides which pairs each form keeps (nst/lbfgs.py).
    weights = {"content_weight": 1e4, "style_weight": 1e7}
    modules = {c: make_module(lbfgs, fast=FastPath(compact_lbfgs=c), **weights) for c in (False, True)}
    for module in modules.values():
        fit(module, 4)  # 20 iterations: the 4-pair history wraps around
    assert type(modules[True].optimizers().optimizer) is BatchedLBFGS
    assert type(modules[False].optimizers().optimizer) is TorchLBFGS  # torch.optim.LBFGS, with its restart
    assert torch.allclose(modules[True].image, modules[False].image, atol=1e-4)
    line_search = make_module(partial(lbfgs, line_search_fn="strong_wolfe"), fast=FastPath(compact_lbfgs=True))
    assert type(line_search.configure_optimizers()) is TorchLBFGS  # BatchedLBFGS has no line search


@pytest.mark.parametrize("compact", [False, True], ids=["torch-lbfgs", "batched-lbfgs"])
def test_a_restarted_lbfgs_run_starts_again_from_the_lowest_loss_image_it_evaluated(compact):
    """Not from where it got stuck, which after a blow-up may be far up the loss (benchmarks/results.md).

    A loss scaled by 1e-12 with lr 1e10: the image moves at a normal pace, but no
    curvature pair passes sᵀy > 1e-10, so the first step ends stuck and restarts.
    Its last iteration moved the image without evaluating it; the restart takes that back.
    """
    lbfgs = partial(torch.optim.LBFGS, lr=1e10, max_iter=4, tolerance_grad=-1, tolerance_change=-1)
    module = make_module(
        lbfgs, fast=FastPath(compact_lbfgs=compact), restart_stuck=True, content_weight=1e-12, style_weight=0
    )
    evaluated: list[tuple[float, torch.Tensor]] = []
    evaluate = module.evaluate

    def recorded() -> dict[str, torch.Tensor]:
        terms = evaluate()
        evaluated.append((terms["total"].item(), module.image.detach().clone()))
        return terms

    module.evaluate = recorded
    fit(module, 1)
    assert restarts(module.optimizers().optimizer) == [1]
    best_loss, best_image = min(evaluated, key=lambda pair: pair[0])
    assert best_loss < evaluated[0][0] and not torch.equal(best_image, evaluated[0][1])
    assert torch.equal(module.image, best_image)


def test_a_resumed_lbfgs_run_goes_on_with_the_lbfgs_that_wrote_its_checkpoint(tmp_path):
    lbfgs = partial(torch.optim.LBFGS, max_iter=5, history_size=4, tolerance_grad=-1, tolerance_change=-1)
    straight = make_module(lbfgs, fast=FastPath(compact_lbfgs=True))
    fit(straight, 4)
    fit(make_module(lbfgs, fast=FastPath(compact_lbfgs=True)), 2).save_checkpoint(tmp_path / "cut.ckpt")
    resumed = make_module(lbfgs, fast=FastPath(compact_lbfgs=False))  # as `auto` on a CPU after a GPU
    fit(resumed, 4, ckpt_path=tmp_path / "cut.ckpt")
    assert type(resumed.optimizers().optimizer) is BatchedLBFGS
    assert torch.allclose(resumed.image, straight.image, atol=1e-6)


def test_bf16_and_channels_last_keep_the_losses_close_to_fp32_and_the_optimisation_working():
    exact = make_module(partial(torch.optim.Adam, lr=0.05))
    fast = make_module(partial(torch.optim.Adam, lr=0.05), fast=FastPath(channels_last=True, bf16=True))
    for module in (exact, fast):
        module.on_fit_start()
    with torch.no_grad():
        reference, terms = exact.evaluate(), fast.evaluate()
    assert all(terms[k].dtype == torch.float32 for k in terms)  # Grams and losses leave the encoder as fp32
    for key in ("content", "style", "total"):
        assert terms[key].item() == pytest.approx(reference[key].item(), rel=0.05), key
    before = terms["total"].item()
    fit(fast, 10)
    assert fast.last_terms["total"].item() < 0.5 * before
