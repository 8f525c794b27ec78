"""Trap 15: a config whose shapes don't fit fails in the dry run, naming the layer and the fix."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

from lazytrain.dry_run import ShapeMismatchError, apply_init, count_parameters, parameter_table
from lazytrain.init import xavier
from lazytrain.models import lazy_mlp

X = torch.zeros(4, 1, 28, 28)


def dry_run(net: nn.Module) -> None:
    apply_init(net, X, partial(xavier), num_classes=10)


def test_the_seed_example_names_layer_input_and_expectation():
    net = nn.Sequential(nn.Flatten(), nn.LazyLinear(256), nn.ReLU(), nn.Linear(64, 10))
    with pytest.raises(ShapeMismatchError) as err:
        dry_run(net)
    message = str(err.value)
    assert "layer 3 (Linear) got input of shape [4, 256]" in message
    assert "expects last dimension 64" in message
    assert "nn.LazyLinear" in message  # the fix


def test_conv_channel_mismatch():
    net = nn.Sequential(nn.LazyConv2d(8, 3), nn.Conv2d(4, 8, 3), nn.Flatten(), nn.LazyLinear(10))
    with pytest.raises(
        ShapeMismatchError,
        match=r"layer 1 \(Conv2d\) got input of shape \[4, 8, 26, 26\], but it expects 4 channels",
    ):
        dry_run(net)


def test_nested_modules_are_named_by_path():
    net = nn.Sequential(nn.Flatten(), nn.Sequential(nn.LazyLinear(32), nn.Linear(16, 10)))
    with pytest.raises(ShapeMismatchError, match=r"layer 1\.1 \(Linear\)"):
        dry_run(net)


def test_missing_flatten_is_caught_at_the_output():
    net = nn.Sequential(nn.LazyLinear(256), nn.ReLU(), nn.LazyLinear(10))  # infers in_features=28
    with pytest.raises(ShapeMismatchError, match=r"output has shape \[4, 1, 28, 10\].*Flatten"):
        dry_run(net)


def test_wrong_number_of_classes_is_caught_at_the_output():
    with pytest.raises(ShapeMismatchError, match=r"\[4, 7\], expected \[4, 10\].*LazyLinear\(10\)"):
        dry_run(lazy_mlp(num_classes=7))


def test_a_failed_dry_run_leaves_no_half_initialized_model_behind():
    net = nn.Sequential(nn.Flatten(), nn.LazyLinear(256), nn.Linear(64, 10))
    with pytest.raises(ShapeMismatchError):
        dry_run(net)
    # the error must not have left hooks behind: a fixed net runs cleanly
    net[2] = nn.LazyLinear(10)
    dry_run(net)
    assert net(X).shape == (4, 10)
    assert all(
        not m._forward_hooks and not m._forward_pre_hooks
        for m in net.modules()
        if not isinstance(m, nn.LazyLinear)
    )


def test_trap11_counting_and_tabulating_a_lazy_model_does_not_crash():
    net = lazy_mlp()
    with pytest.raises(ValueError):
        sum(p.numel() for p in net.parameters())  # what naive templates do
    assert count_parameters(net) == 0
    assert parameter_table(net)[0] == ("1.weight", "uninitialized")
    dry_run(net)
    assert count_parameters(net) == 784 * 256 + 256 + 256 * 10 + 10
