"""The loss functions against their formulas, computed by hand on small tensors."""

import pytest
import torch

from nst.judge import sliced_wasserstein
from nst.losses import (
    channel_mean_std,
    content_loss,
    gram,
    mean_std_loss,
    mrf_loss,
    nearest_patches,
    patches,
    projected_quantiles,
    relative_error,
    sliced_wasserstein_loss,
    style_gram,
    style_loss,
    total_variation,
)

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


def test_channel_mean_std_is_each_channels_mean_and_biased_std_over_positions():
    x = torch.tensor([[[[1.0, 3.0]], [[2.0, 2.0]]]])  # C=2, one row of two positions
    stats = channel_mean_std(x, eps=0.0)
    assert torch.equal(stats, torch.tensor([[[2.0, 2.0], [1.0, 0.0]]]))  # means (2, 2), stds (1, 0)
    assert channel_mean_std(x)[0, 1, 1] == pytest.approx(1e-5**0.5)  # ε keeps a dead channel's σ > 0


def test_mean_std_loss_is_the_mean_over_channels_of_squared_mean_and_std_differences():
    x = torch.tensor([[[[1.0, 3.0]], [[2.0, 2.0]]]])  # μ = (2, 2), σ = (1, 0)
    target = torch.tensor([[[0.0, 2.0], [3.0, 0.0]]])  # μˢ = (0, 2), σˢ = (3, 0)
    expected = ((2 - 0) ** 2 + (1 - 3) ** 2 + 0 + 0) / 2
    assert mean_std_loss(x, target).item() == pytest.approx(expected, abs=1e-4)  # ε moves σ by 3e-3 at most
    batch = torch.cat([x, x.flip(-1)])
    assert torch.allclose(mean_std_loss(batch, target), mean_std_loss(x, target).expand(2))


def test_nearest_patch_is_the_one_of_highest_normalised_cross_correlation_not_the_closest():
    style = torch.tensor([[1.0, 0.0], [10.0, 10.0]])  # 1x1 patches of two channels
    generated = torch.tensor([[[2.0, 0.1]]])
    assert nearest_patches(generated, style).tolist() == [[0]]  # NCC 0.999 against 0.74
    generated = torch.tensor([[[2.0, 1.5]]])  # 1.8 from [1, 0], 11.7 from [10, 10]; NCC 0.8 against 0.99
    assert nearest_patches(generated, style).tolist() == [[1]]


def test_nearest_patches_compared_in_chunks_find_the_same_matches():
    torch.manual_seed(1)
    generated, style = torch.randn(2, 30, 8), torch.randn(50, 8)
    assert torch.equal(nearest_patches(generated, style, chunk=7), nearest_patches(generated, style, chunk=1000))


def test_mrf_loss_sums_squared_distances_to_the_matched_style_patches():
    features = torch.tensor([[[[2.0, 0.0]], [[0.1, 1.0]]]])  # two 1x1 patches: (2, 0.1) and (0, 1)
    style = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    # (2, 0.1) matches (1, 0): 1 + 0.01; (0, 1) matches (0, 3): 4.
    assert mrf_loss(features, style, size=1).item() == pytest.approx(5.01)
    x = torch.arange(9.0).reshape(1, 1, 3, 3)
    assert patches(x, 2, 1)[0].tolist() == [[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]]
    assert patches(x, 2, 2)[0].tolist() == [[0, 1, 3, 4]]
    assert mrf_loss(x, patches(x, 2, 1)[0], size=2).item() == 0  # every patch is its own match


def test_mrf_gradient_pulls_each_patch_towards_its_match_and_is_per_image():
    features = torch.tensor([[[[2.0, 0.0]], [[0.1, 1.0]]]], requires_grad=True)
    style = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    mrf_loss(features, style, size=1).backward()
    assert torch.allclose(features.grad, torch.tensor([[[[2.0, 0.0]], [[0.2, -4.0]]]]))  # 2 (f − match)
    batch = torch.cat([features.detach(), features.detach().flip(-1) * 2])
    alone = torch.stack([mrf_loss(batch[i : i + 1], style, size=1)[0] for i in range(2)])
    assert torch.allclose(mrf_loss(batch, style, size=1), alone)


def test_sliced_wasserstein_compares_sorted_projections_and_ignores_where_features_are():
    result = torch.tensor([[[[0.0, 1.0]]]])  # one channel: the directions are ±1, the same figure either way
    style = torch.tensor([[[[2.0, 0.0]]]])
    assert sliced_wasserstein(result, [style], [1.0], seed=0).item() == pytest.approx((1 - 2) ** 2 / 2**2)
    torch.manual_seed(2)
    f = torch.randn(1, 4, 3, 5)
    shuffled = f.flatten(2)[..., torch.randperm(15)].reshape(1, 4, 3, 5)
    assert sliced_wasserstein(f, [shuffled], [1.0], seed=0).item() == pytest.approx(0, abs=1e-6)
    twice = torch.cat([f, f], -1)  # the same distribution from twice the positions: resampled, still 0
    assert sliced_wasserstein(f, [twice], [1.0], seed=0).item() == pytest.approx(0, abs=1e-6)
    other = torch.randn(1, 4, 3, 5)
    assert sliced_wasserstein(f, [other], [1.0], seed=0) == sliced_wasserstein(f, [other], [1.0], seed=0)
    assert sliced_wasserstein(f, [other], [1.0], seed=0) != sliced_wasserstein(f, [other], [1.0], seed=1)


def test_sliced_wasserstein_blends_styles_as_their_barycentre():
    result = torch.tensor([[[[1.0, 2.0]]]])
    low, high = torch.tensor([[[[0.0, 1.0]]]]), torch.tensor([[[[2.0, 3.0]]]])  # the barycentre is (1, 2)
    assert sliced_wasserstein(result, [low, high], [0.5, 0.5], seed=0).item() == pytest.approx(0, abs=1e-7)


def test_the_sliced_wasserstein_loss_is_the_judges_distance_along_the_same_directions_per_image():
    torch.manual_seed(3)
    f, style = torch.randn(2, 4, 3, 5), torch.randn(1, 4, 6, 5)
    generator = torch.Generator().manual_seed(0)
    directions = torch.randn(4, 4, generator=generator)
    directions = directions / directions.norm(dim=0, keepdim=True)
    target = projected_quantiles(style, directions, levels=30)  # as many levels as the style has positions: exact
    loss = sliced_wasserstein_loss(f, target, directions)
    judged = torch.stack([sliced_wasserstein(f[i : i + 1], [style], [1.0], seed=0) for i in range(2)])
    assert loss.shape == (2,) and torch.allclose(loss, judged, rtol=1e-5)
    shuffled = style.flatten(2)[..., torch.randperm(30)].reshape(1, 4, 6, 5)  # where features are does not count
    assert sliced_wasserstein_loss(shuffled, target, directions).item() == pytest.approx(0, abs=1e-6)


def test_the_sliced_wasserstein_loss_pulls_features_to_the_styles_distribution():
    torch.manual_seed(4)
    style = 3 + 2 * torch.randn(1, 3, 8, 8)
    directions = torch.linalg.qr(torch.randn(3, 3))[0]
    target = projected_quantiles(style, directions, levels=64)
    f = torch.randn(1, 3, 8, 8, requires_grad=True)
    optimizer = torch.optim.Adam([f], lr=0.1)
    before = sliced_wasserstein_loss(f, target, directions).item()
    for _ in range(200):
        optimizer.zero_grad()
        sliced_wasserstein_loss(f, target, directions).sum().backward()
        optimizer.step()
    assert sliced_wasserstein_loss(f, target, directions).item() < 0.01 * before
    assert f.mean().item() == pytest.approx(3, abs=0.3) and f.std().item() == pytest.approx(2, abs=0.3)
