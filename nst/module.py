"""The Lightning module: generated images, optimised against fixed content and style targets.

A module holds one run, or a batch of runs that share the content, the style, the
image size and the backbone but may differ in everything else a researcher sweeps
(loss and layer weights, start image, seed, learning rate). The runs of a batch
share each forward pass and never influence each other: every loss is per image and
every run keeps its own optimizer state (nst.optimizers).
"""

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from nst.backbones import VGG
from nst.errors import NSTError
from nst.fastpath import Encode, FastPath
from nst.layers import layer_weights
from nst.losses import CONVENTIONS, content_loss, style_gram, style_loss, total_variation
from nst.optimizers import (
    OptimizerFactory,
    newest_pair,
    one_optimizer_for_all,
    restart_if_stuck,
    restarted_runs,
    written_by_batched_lbfgs,
)
from nst.targets import blend_weights, content_targets, style_targets

# The frozen backbone stays in eval mode on purpose; Lightning warns about that at every fit.
warnings.filterwarnings("ignore", ".*module\\(s\\) in eval mode at the start of training.*")


def check_loss_weights(
    content_weight: float, style_weight: float, tv_weight: float, tv_beta: float, convention: str
) -> None:
    """Reject weights that make no sense before any compute is spent."""
    if convention not in CONVENTIONS:
        raise NSTError(f"unknown loss.convention {convention!r}: choose one of {', '.join(CONVENTIONS)}")
    weights = {"content_weight": content_weight, "style_weight": style_weight, "tv_weight": tv_weight}
    for name, value in weights.items():
        if not isinstance(value, (int, float)) or value != value or value < 0:
            raise NSTError(f"loss.{name}={value!r} must be a number >= 0")
    if not isinstance(tv_beta, (int, float)) or not tv_beta > 0:
        raise NSTError(f"loss.tv_beta={tv_beta!r} must be a number > 0 (2 is the usual squared TV)")
    if content_weight == 0 and style_weight == 0:
        raise NSTError("loss.content_weight and loss.style_weight are both 0: nothing to optimise")


class NonFiniteLoss(NSTError):
    """The loss became NaN or infinite; the run's lowest-loss image has been restored."""


@dataclass
class RunSettings:
    """What one run of a batch may set for itself (`init`: its start image, set once the content is loaded)."""

    content_layers: Mapping[str, float]
    style_layers: Mapping[str, float]
    optimizer: OptimizerFactory
    content_weight: float = 1.0
    style_weight: float = 1.0
    tv_weight: float = 0.0
    init: Tensor | None = None


@dataclass(frozen=True)
class Stage:
    """Where a fit sits in a coarse-to-fine run: its index and what the stages before it took.

    Saved in every checkpoint, so that an interrupted run resumes at its own stage.
    """

    index: int = 0
    evaluations_before: int = 0
    fit_time_before: float = 0.0


def check_run(run: RunSettings, arch: str, tv_beta: float, convention: str) -> tuple[dict, dict]:
    """Refuse a run's bad settings before any compute; its content and style layers, canonical."""
    check_loss_weights(run.content_weight, run.style_weight, run.tv_weight, tv_beta, convention)
    try:  # a bad setting (lr=fast) would otherwise surface only inside the Trainer
        run.optimizer([torch.zeros(1, requires_grad=True)])
    except (TypeError, ValueError) as exc:
        raise NSTError(f"cannot build optimizer.torch ({exc}): check the optimizer.torch.* settings") from None
    return layer_weights(run.content_layers, arch, "content"), layer_weights(run.style_layers, arch, "style")


def _per_run(values: Sequence[Mapping[str, float]]) -> dict[str, list[float]]:
    """`{layer: weight}` of each run -> `{layer: [weight of run 1, …]}` over the union of their layers."""
    names = list(dict.fromkeys(name for value in values for name in value))
    return {name: [value.get(name, 0.0) for value in values] for name in names}


class StyleTransfer(pl.LightningModule):
    """Treats the generated images, one per run, as the model's only parameters.

    The backbone is frozen and cut after its deepest used layer; the content
    features and (blended) style Grams are computed once when fitting starts, on
    the fitting device. Each training step is one optimiser step: for L-BFGS that
    is up to `max_iter` evaluations through the closure, for Adam one.
    """

    def __init__(
        self,
        encoder: VGG,
        content: Tensor,
        styles: Sequence[Tensor],
        runs: Sequence[RunSettings],
        tv_beta: float = 2.0,
        convention: str = "jcjohnson",
        style_blend: Sequence[float] | None = None,
        fast: FastPath | None = None,
        restart_stuck_lbfgs: bool = False,
    ):
        super().__init__()
        self.automatic_optimization = False
        checked = [check_run(run, encoder.arch, tv_beta, convention) for run in runs]
        content_layers, style_layers = [c for c, _ in checked], [s for _, s in checked]
        if len({tuple(run.init.shape) for run in runs}) != 1:
            raise NSTError("the runs of a batch start from images of different sizes: batch only runs of one size")
        self.content_layers, self.style_layers = _per_run(content_layers), _per_run(style_layers)
        self.layers = set(self.content_layers) | set(self.style_layers)
        self.encoder = encoder.trim(self.layers)
        self.weights = {
            "content": [r.content_weight for r in runs],
            "style": [r.style_weight for r in runs],
            "tv": [r.tv_weight for r in runs],
        }
        self.tv_beta, self.convention = tv_beta, convention
        self.fast = fast or FastPath()
        self._encode: Encode | None = None  # the encoder on the fast path, set up on the fitting device
        self._compact_lbfgs: bool | None = None  # set by a checkpoint: the L-BFGS that wrote its history
        self.stage = Stage()  # where in a coarse-to-fine run this module's fit is, for its checkpoint
        self.optimizer_factories = [run.optimizer for run in runs]
        self.restart_stuck_lbfgs = restart_stuck_lbfgs  # optimizer.restart_stuck: see nst.optimizers.restart_if_stuck
        self.blend = blend_weights(len(styles), style_blend)

        self.images = nn.ParameterList([nn.Parameter(r.init.detach().clone().contiguous()) for r in runs])
        # Each run's lowest-loss image evaluated in this fit: where a stuck L-BFGS run restarts and a failed run stays.
        self.register_buffer("best", self.image.detach().clone(), persistent=False)
        self.register_buffer("best_loss", torch.full((len(runs),), torch.inf), persistent=False)
        self.register_buffer("frozen", torch.zeros(len(runs), dtype=torch.bool), persistent=False)
        self.register_buffer("content_image", content)
        self.style_images = list(styles)
        self.content_targets: dict[str, Tensor] = {}
        self.style_targets: dict[str, Tensor] = {}
        self.factors: dict[str, Tensor] = {}
        self.evaluations = 0
        self.last_terms: dict[str, Tensor] = {}
        self.start_terms: dict[str, Tensor] = {}  # the fit's first evaluation: the start image's loss, logged at step 0
        self._terms_on_host: tuple[int, list[list[float]]] = (-1, [])  # (evaluation, terms x runs)
        self.failures: dict[int, str] = {}

    @property
    def image(self) -> Tensor:
        """The batch of generated images, (N, 3, H, W); for one run, the parameter itself."""
        return self.images[0] if len(self.images) == 1 else torch.cat(list(self.images))

    def extra_repr(self) -> str:
        return (
            f"runs={len(self.images)}, content={self.content_layers}, style={self.style_layers}, "
            f"weights={self.weights}, convention={self.convention}"
        )

    def on_fit_start(self) -> None:
        self._encode = self.fast.encoder(self.encoder, self.device)
        self.best.copy_(self.image.detach())  # a resumed run's image, restored by Lightning before this hook
        self.best_loss.fill_(torch.inf)
        content_layers = set(self.content_layers)
        self.content_targets = content_targets(self.encode, self.content_image, content_layers)
        styles = [s.to(self.device) for s in self.style_images]
        self.style_targets = style_targets(
            self.encode, styles, self.blend, set(self.style_layers), lambda f: style_gram(f, self.convention)
        )
        per_run = {**self.weights, **{f"content/{n}": w for n, w in self.content_layers.items()}}
        per_run.update({f"style/{n}": w for n, w in self.style_layers.items()})
        self.factors = {k: torch.tensor(w, device=self.device) for k, w in per_run.items()}

    def encode(self, image: Tensor, layers: set[str]) -> dict[str, Tensor]:
        """Features of `image` at `layers`, in fp32, through the fast path once fitting has set it up."""
        return (self._encode or self.encoder)(image, layers)

    def evaluate(self) -> dict[str, Tensor]:
        """Every loss term of the current images, one value per run: one encoder pass feeds them all."""
        image = self.image
        features = self.encode(image, self.layers)
        terms: dict[str, Tensor] = {}
        for name in self.content_layers:
            terms[f"content/{name}"] = content_loss(features[name], self.content_targets[name], self.convention)
        for name in self.style_layers:
            terms[f"style/{name}"] = style_loss(features[name], self.style_targets[name], self.convention)
        for kind, layers in (("content", self.content_layers), ("style", self.style_layers)):
            terms[kind] = sum(self.factors[f"{kind}/{n}"] * terms[f"{kind}/{n}"] for n in layers)
        weighed = ("content", "style", "tv") if any(self.weights["tv"]) else ("content", "style")
        # TV that no run weighs (the default) is still reported, but kept out of the graph: no backward pass for it.
        with torch.set_grad_enabled(torch.is_grad_enabled() and "tv" in weighed):
            terms["tv"] = total_variation(image, self.tv_beta)
        terms["total"] = sum(self.factors[k] * terms[k] for k in weighed)
        return terms

    def training_step(self, batch: Tensor, batch_idx: int) -> None:
        optimizer = self.optimizers()

        def closure() -> Tensor:
            optimizer.zero_grad()
            terms = self.evaluate()
            total = torch.where(self.frozen, 0.0, terms["total"])
            self.manual_backward(total.sum())
            self._remember_best(torch.where(self.frozen, torch.inf, terms["total"].detach()))
            self.evaluations += 1
            self.last_terms = {k: v.detach() for k, v in terms.items()}
            if self.global_step == 0 and not self.start_terms:
                self.start_terms = self.last_terms
            return total.detach()

        torch_lbfgs = optimizer.optimizer if isinstance(optimizer.optimizer, torch.optim.LBFGS) else None
        before = newest_pair(torch_lbfgs) if torch_lbfgs and self.restart_stuck_lbfgs else None
        optimizer.step(closure=closure)
        if before is not None and restart_if_stuck(torch_lbfgs, before):
            self._back_to_best(torch.ones(1, dtype=torch.bool, device=self.device))
        restarted = restarted_runs(optimizer.optimizer)  # BatchedLBFGS restarts its stuck runs itself, on the device
        if restarted is not None and self.restart_stuck_lbfgs:
            self._back_to_best(restarted)
        broken = ~torch.isfinite(self.last_terms["total"]) | self.frozen  # global_step now counts this step
        if bool(broken.any()):
            self._keep_best(broken)

    def on_train_end(self) -> None:
        """Measure the images the fit leaves, and put back its lowest-loss image in any run they made worse.

        Neither optimiser evaluates its last move: torch's LBFGS stops right after it, Adam
        never evaluates where its step lands. Without a line search that move can blow the
        loss up (benchmarks/results.md). One more pass makes `last_terms`, and so metrics.json,
        the terms of the image saved as final.png. It builds its graph as the steps' passes do,
        unused: a pass without gradients would make torch.compile compile the backbone again.
        """
        if self.trainer.global_step < self.trainer.max_steps:  # interrupted: its checkpoint holds these images
            return
        terms = self.evaluate()
        worse = ~(terms["total"] <= self.best_loss) & ~self.frozen  # NaN counts as worse
        if bool(worse.any()):
            self._back_to_best(worse)
            terms = self.evaluate()
        self.last_terms = {k: v.detach() for k, v in terms.items()}
        self._terms_on_host = (-1, [])

    @torch.no_grad()
    def _remember_best(self, loss: Tensor) -> None:
        """Keep each run's lowest-loss image so far, on the device (no sync), for `_back_to_best`."""
        better = loss < self.best_loss
        self.best_loss.copy_(torch.where(better, loss, self.best_loss))
        self.best.copy_(torch.where(better[:, None, None, None], self.image.detach(), self.best))

    @torch.no_grad()
    def _back_to_best(self, restarted: Tensor) -> None:
        """A run whose L-BFGS history was just forgotten starts again from its best image, not from where it stuck.

        Without a line search, the step that got a run stuck may have blown its loss up
        by twenty orders of magnitude; restarting there lets the next steps blow it up
        further (measured in benchmarks/results.md).
        """
        for index, image in enumerate(self.images):
            image.copy_(torch.where(restarted[index], self.best[index : index + 1], image))

    @torch.no_grad()
    def _keep_best(self, broken: Tensor) -> None:
        """Runs whose loss became NaN/inf go back to their lowest-loss image and stay there.

        Not to the image the step started from: for Adam that is the very image whose
        loss was not finite, and for L-BFGS it may be.
        """
        for index in broken.nonzero().flatten().tolist():
            self.images[index].copy_(self.best[index : index + 1])
            if not self.frozen[index]:
                value = self.last_terms["total"][index].item()
                self.failures[index] = (
                    f"the loss became {value} at step {self.global_step}: lower the learning rate "
                    "(optimizer.torch.lr) or the loss weights; its lowest-loss image is kept as last_good.png"
                )
        self.frozen |= broken
        if bool(self.frozen.all()):
            raise NonFiniteLoss(self.failures[min(self.failures)])

    def terms_of(self, run: int) -> dict[str, float]:
        """The last evaluation's loss terms of one run, as numbers.

        Every run's snapshot, logger and history read these each step: the terms of all
        runs come to the host once per evaluation (one device sync), not once per reader.
        """
        if self._terms_on_host[0] != self.evaluations:
            values = torch.stack([v.float() for v in self.last_terms.values()]).tolist()
            self._terms_on_host = (self.evaluations, values)
        rows = self._terms_on_host[1]
        return {name: row[run] for name, row in zip(self.last_terms, rows, strict=True)}

    def start_terms_of(self, run: int) -> dict[str, float]:
        """The loss terms of one run's start image, read once per fit."""
        return {name: float(values[run]) for name, values in self.start_terms.items()}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """The frozen encoder is left out: its config reloads it, and any run of a batch can resume alone."""
        checkpoint["evaluations"] = self.evaluations
        checkpoint["stage"] = asdict(self.stage)
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("encoder.")}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Lightning calls this before loading the state and `configure_optimizers`.

        The encoder's weights come from this run's own (trimmed) encoder, and a resumed
        run keeps the kind of L-BFGS state it was saved with.
        """
        self.evaluations = checkpoint["evaluations"]
        encoder = {f"encoder.{k}": v for k, v in self.encoder.state_dict().items()}
        checkpoint["state_dict"] = {**checkpoint["state_dict"], **encoder}
        saved = (checkpoint.get("optimizer_states") or [{}])[0].get("state", {})
        if saved:  # a run interrupted on a GPU may resume on a CPU, whose `auto` would pick the other one
            self._compact_lbfgs = written_by_batched_lbfgs(saved)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        compact = self._compact_lbfgs
        if compact is None:
            compact = bool(self.fast.for_device(self.device).compact_lbfgs)
        return one_optimizer_for_all(
            self.optimizer_factories, list(self.images), compact_lbfgs=compact, restart_stuck=self.restart_stuck_lbfgs
        )
