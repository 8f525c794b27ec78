"""apply_init: dry run first, then the scheme — once, deterministically, without side effects.

Traps 12–14 of docs/lazy-traps.md, the init statistics, and idempotency (the half of trap 5 that
lives below Lightning).
"""

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


def state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items()}


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


def test_trap12_init_before_the_dry_run_is_skipped_or_fails():
    """What apply_init avoids: d2l's type check misses LazyLinear; isinstance hits a lazy weight."""
    net = lazy_mlp()
    assert not any(type(m) is nn.Linear for m in net.modules())  # d2l's init would do nothing
    with pytest.raises(ValueError, match="uninitialized parameter"):
        nn.init.xavier_uniform_(net[1].weight)
    apply_init(net, X[:2], partial(schemes.xavier))
    assert all(type(m) is nn.Linear for m in layers(net))


def test_trap13_dry_run_leaves_batchnorm_statistics_and_mode_alone():
    net = lazy_convnet(channels=[8])
    net.train()
    apply_init(net, X[:2], partial(schemes.xavier), num_classes=10)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns
    for bn in bns:
        assert bn.num_batches_tracked.item() == 0
        assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
        assert torch.equal(bn.running_var, torch.ones_like(bn.running_var))
    assert net.training and all(m.training for m in net.modules())
    net.eval()
    apply_init(lazy_mlp(), X[:2], partial(schemes.xavier))  # other nets don't change this one
    assert not net.training


def test_dry_run_restores_eval_mode_too():
    net = lazy_mlp(dropout=0.5).eval()
    apply_init(net, X[:2], partial(schemes.xavier))
    assert not net.training


def test_sample_needs_two_examples():
    with pytest.raises(ValueError, match="at least 2 examples"):
        apply_init(lazy_mlp(), X[:1], partial(schemes.xavier))


@pytest.mark.parametrize(
    "scheme", [schemes.xavier, schemes.normal, schemes.kaiming, schemes.default]
)
def test_trap14_same_seed_same_weights_whatever_the_sample(scheme):
    """Batch 2 vs 64, different images, dropout in the net: bit-identical weights per seed."""
    a, b, c = lazy_mlp(dropout=0.5), lazy_mlp(dropout=0.5), lazy_mlp(dropout=0.5)
    apply_init(a, X[:2], partial(scheme), seed=7)
    apply_init(b, torch.randn(64, 1, 28, 28), partial(scheme), seed=7)
    apply_init(c, X[:2], partial(scheme), seed=8)
    for (name, pa), pb, pc in zip(
        a.state_dict().items(), b.state_dict().values(), c.state_dict().values(), strict=True
    ):
        assert torch.equal(pa, pb), name
        if pa.ndim == 2:
            assert not torch.equal(pa, pc), name


def test_trap14_dry_run_does_not_consume_the_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(5)
    torch.manual_seed(123)
    apply_init(lazy_cnn(), X[:16], partial(schemes.xavier), seed=0)
    assert torch.equal(torch.rand(5), expected)


def test_apply_init_is_idempotent_on_a_materialized_model():
    net = lazy_convnet(channels=[8])
    assert apply_init(net, X[:4], partial(schemes.xavier), num_classes=10) is not None
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)  # "training"
    before = state(net)
    assert apply_init(net, X[:4], partial(schemes.normal), num_classes=10) is None
    after = state(net)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_lazy_layer_the_forward_pass_never_reaches_is_reported():
    class Skips(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = (
                nn.Sequential(nn.Flatten(), nn.LazyLinear(10)),
                nn.LazyLinear(3),
            )

        def forward(self, x):
            return self.used(x)

    with pytest.raises(RuntimeError, match=r"did not reach unused\.weight"):
        apply_init(Skips(), X[:2], partial(schemes.xavier))


def test_report_has_shapes_before_and_after():
    report = apply_init(lazy_mlp(), X[:2], partial(schemes.xavier), num_classes=10)
    assert dict(report.before)["1.weight"] == "uninitialized"
    assert dict(report.after)["1.weight"] == "[256, 784]"
    assert report.total_params == 784 * 256 + 256 + 2570
    assert [t.output_shape for t in report.layers][-1] == (2, 10)
