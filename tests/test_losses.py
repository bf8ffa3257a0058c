"""The loss functions against their formulas, computed by hand on small tensors."""

import pytest
import torch

from nst.losses import content_loss, gram, relative_error, style_gram, style_loss, total_variation

torch.manual_seed(0)
F = torch.randn(2, 3, 4, 5)  # B=2, C=N=3, H=4, W=5, M=20
P = torch.randn(2, 3, 4, 5)
S = torch.randn(1, 3, 4, 5)


def test_gram_is_feature_outer_product_over_positions():
    flat = F[0].reshape(3, 20)
    assert torch.allclose(gram(F, normalise=False)[0], flat @ flat.T)
    assert torch.allclose(gram(F)[0], flat @ flat.T / 60)


@pytest.mark.parametrize(
    ("convention", "expected"),
    [
        ("gatys", 0.5 * ((F - P) ** 2).sum((1, 2, 3))),
        ("johnson", ((F - P) ** 2).sum((1, 2, 3)) / 60),
        ("jcjohnson", ((F - P) ** 2).mean((1, 2, 3))),
        ("keras", ((F - P) ** 2).sum((1, 2, 3)) / (4 * 60)),
    ],
)
def test_content_loss_per_convention(convention, expected):
    assert torch.allclose(content_loss(F, P, convention), expected)


def _style_by_hand(convention):
    def g(x):
        flat = x.reshape(x.shape[0], 3, 20)
        return flat @ flat.transpose(1, 2)

    if convention == "gatys" or convention == "keras":
        return ((g(F) - g(S)) ** 2).sum((1, 2)) / (4 * 3**2 * 20**2)
    if convention == "johnson":
        return ((g(F) / 60 - g(S) / 60) ** 2).sum((1, 2))
    return ((g(F) / 60 - g(S) / 60) ** 2).mean((1, 2))


@pytest.mark.parametrize("convention", ["gatys", "johnson", "jcjohnson", "keras"])
def test_style_loss_per_convention(convention):
    target = style_gram(S, convention)
    assert torch.allclose(style_loss(F, target, convention), _style_by_hand(convention))


def test_losses_are_per_image_of_the_batch():
    losses = style_loss(F, style_gram(S, "jcjohnson"), "jcjohnson")
    assert losses.shape == (2,)
    assert torch.allclose(losses[1], style_loss(F[1:], style_gram(S, "jcjohnson"), "jcjohnson")[0])


def test_total_variation_is_zero_on_flat_images_and_mean_of_squared_steps():
    assert total_variation(torch.full((1, 3, 8, 8), 0.3)).item() == 0
    ramp = torch.arange(4.0).repeat(1, 1, 4, 1)  # 0,1,2,3 along x: every Δx = 1, Δy = 0
    assert total_variation(ramp).item() == pytest.approx(1.0)
    assert total_variation(ramp * 2, beta=1.0).item() == pytest.approx(2.0)


def test_total_variation_gradient_is_finite_below_beta_two():
    image = torch.full((1, 3, 8, 8), 0.5, requires_grad=True)
    total_variation(image, beta=1.25).sum().backward()
    assert torch.isfinite(image.grad).all()


def test_relative_error_is_scale_free():
    assert relative_error(2 * F, 2 * P).allclose(relative_error(F, P))
    assert relative_error(P, P).abs().max() == 0
