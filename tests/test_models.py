"""Lazy architectures: shapes are inferred from the data, configs declare output sizes only."""

from __future__ import annotations

import re
from functools import partial

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from lazytrain.dry_run import apply_init, uninitialized
from lazytrain.init import default, xavier
from lazytrain.models import LazyResidualBlock, lazy_cnn, lazy_convnet, lazy_mlp, lazy_resnet

X = torch.zeros(2, 1, 28, 28)


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: lazy_mlp(), {"1.weight": (256, 784), "3.weight": (10, 256)}),
        (
            lambda: lazy_mlp(hidden=[512, 128]),
            {"1.weight": (512, 784), "3.weight": (128, 512), "5.weight": (10, 128)},
        ),
        (
            lambda: lazy_cnn(),
            {
                "0.weight": (6, 1, 5, 5),
                "3.weight": (16, 6, 5, 5),
                "7.weight": (120, 400),
                "9.weight": (84, 120),
                "11.weight": (10, 84),
            },
        ),
        (
            lambda: lazy_convnet(channels=[8, 16]),
            {
                "0.weight": (8, 1, 3, 3),
                "3.weight": (8, 8, 3, 3),
                "7.weight": (16, 8, 3, 3),
                "15.weight": (10, 16),
            },
        ),
    ],
)
def test_each_model_infers_its_shapes_on_fashion_mnist_images(build, expected):
    net = build()
    assert len(uninitialized(net)) > 0
    apply_init(net, X, default, num_classes=10)
    shapes = {name: tuple(p.shape) for name, p in net.named_parameters()}
    for name, shape in expected.items():
        assert shapes[name] == shape
    assert net(X).shape == (2, 10)


def test_the_same_declaration_fits_other_input_sizes():
    net = lazy_cnn()
    apply_init(net, torch.zeros(2, 3, 32, 32), default, num_classes=10)
    assert net[0].weight.shape == (6, 3, 5, 5)
    assert net[7].weight.shape == (120, 16 * 6 * 6)


def test_layer_list_config_declares_a_new_architecture_in_yaml(cfg_factory):
    cfg = cfg_factory("model=lazy_layers")
    net = instantiate(cfg.model)
    assert isinstance(net, nn.Sequential)
    apply_init(net, X, instantiate(cfg.init), num_classes=10)
    assert net[0].weight.shape == (16, 1, 3, 3)
    assert net[5].weight.shape == (64, 16 * 14 * 14)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: lazy_mlp(hidden=[0]), "hidden sizes must be positive"),
        (lambda: lazy_mlp(hidden=[256, -3]), "hidden sizes must be positive"),
        (lambda: lazy_cnn(channels=[6, 0]), "channels must be positive"),
        (lambda: lazy_mlp(num_classes=0), "num_classes must be positive"),
        (
            lambda: lazy_mlp(activation="swish"),
            "unknown activation 'swish'; choose one of: gelu, relu",
        ),
        (lambda: lazy_cnn(pool="median"), "unknown pool 'median'; choose one of: avg, max"),
        (lambda: lazy_mlp(dropout=1.5), "dropout must be in [0, 1)"),
    ],
)
def test_bad_sizes_and_names_are_refused_with_the_choices(build, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build()


def test_lazy_resnet_projects_with_lazy_shortcuts():
    net = lazy_resnet(stages=[8, 16], blocks_per_stage=2)
    assert isinstance(net[3], LazyResidualBlock) and isinstance(net[3].shortcut, nn.Sequential)
    assert isinstance(net[4].shortcut, nn.Identity)
    report = apply_init(net, torch.randn(4, 1, 28, 28), partial(xavier), num_classes=10)
    assert report.output_shape == (4, 10)
    assert net[5].shortcut[0].weight.shape == (16, 8, 1, 1)  # stride-2 projection, inferred
    assert net[5].body[0].weight.shape == (16, 8, 3, 3)
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)
