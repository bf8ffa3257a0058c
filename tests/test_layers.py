import pytest

from nst.errors import NSTError
from nst.layers import canonical, layer_names, layer_weights


def test_vgg19_has_sixteen_convs_and_five_pools():
    names = layer_names("vgg19")
    assert sum(n.startswith("conv") for n in names) == 16
    assert [n for n in names if n.startswith("pool")] == ["pool1", "pool2", "pool3", "pool4", "pool5"]
    assert names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]


def test_vgg16_has_thirteen_convs_and_no_conv3_4():
    names = layer_names("vgg16")
    assert sum(n.startswith("conv") for n in names) == 13
    assert "conv3_4" not in names and "conv3_3" in names


def test_keras_conv_names_mean_the_activation_after_relu():
    assert canonical("block4_conv2", "vgg19") == "relu4_2"
    assert canonical("block3_pool", "vgg16") == "pool3"


def test_unknown_layer_error_lists_the_valid_names():
    with pytest.raises(NSTError) as err:
        canonical("conv3_4", "vgg16")
    message = str(err.value)
    assert "unknown layer 'conv3_4' for vgg16" in message
    assert "conv3_3" in message and "relu5_3" in message


def test_layer_weights_canonicalises_and_rejects_bad_weights():
    assert layer_weights({"block1_conv1": 0.5, "conv4_2": 1}, "vgg19", "style") == {"relu1_1": 0.5, "conv4_2": 1.0}
    with pytest.raises(NSTError, match="must be a finite number >= 0"):
        layer_weights({"conv1_1": -1}, "vgg19", "style")
    with pytest.raises(NSTError, match="is not a number"):
        layer_weights({"conv1_1": "heavy"}, "vgg19", "style")
    with pytest.raises(NSTError, match="content layer set is empty"):
        layer_weights({}, "vgg19", "content")


def test_unknown_arch_is_an_error():
    with pytest.raises(NSTError, match="unknown backbone arch 'vgg11'"):
        layer_names("vgg11")
