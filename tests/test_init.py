"""The init schemes (lazytrain.init), applied through the dry run: each one's statistics."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
from torch import nn

from lazytrain import init as schemes
from lazytrain.dry_run import apply_init
from lazytrain.init import INIT_LAYERS, xavier_bound
from lazytrain.models import lazy_cnn, lazy_convnet, lazy_mlp

X = torch.randn(64, 1, 28, 28)


def layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, INIT_LAYERS)]


@pytest.mark.parametrize("build", [lazy_mlp, lazy_cnn, lazy_convnet])
def test_xavier_uniform_reaches_its_bound_in_every_layer(build):
    """Trap 12's check: 0.9·bound < max|w| ≤ bound, which a skipped init misses (0.0625 vs 0.1263)."""
    net = build()
    apply_init(net, X[:8], partial(schemes.xavier), num_classes=10)
    assert layers(net)
    for layer in layers(net):
        bound = xavier_bound(layer)
        assert 0.9 * bound < layer.weight.abs().max().item() <= bound
        if layer.bias is not None:
            assert torch.count_nonzero(layer.bias) == 0


def test_xavier_normal_and_gain():
    net = lazy_mlp(hidden=[512])
    apply_init(net, X[:4], partial(schemes.xavier, distribution="normal", gain=2.0))
    w = net[1].weight
    expected = 2.0 * math.sqrt(2.0 / (784 + 512))
    assert abs(w.std().item() - expected) < 0.1 * expected


@pytest.mark.parametrize("std", [0.01, 0.05, 1.0])
def test_normal_std_within_ten_percent_and_zero_bias(std):
    net = lazy_cnn()
    apply_init(net, X[:4], partial(schemes.normal, std=std), num_classes=10)
    for layer in layers(net):
        assert abs(layer.weight.std().item() - std) < 0.1 * std
        assert torch.count_nonzero(layer.bias) == 0


def test_kaiming_normal_std():
    net = lazy_mlp(hidden=[1024])
    apply_init(net, X[:4], partial(schemes.kaiming))
    assert abs(net[1].weight.std().item() - math.sqrt(2 / 784)) < 0.05 * math.sqrt(2 / 784)


def test_default_is_torch_reset_parameters_bound():
    net = lazy_mlp()
    apply_init(net, X[:4], partial(schemes.default))
    bound = 1 / math.sqrt(784)  # kaiming_uniform(a=sqrt(5)) -> 1/sqrt(fan_in)
    assert 0.9 * bound < net[1].weight.abs().max().item() <= bound
    assert torch.count_nonzero(net[1].bias) > 0
