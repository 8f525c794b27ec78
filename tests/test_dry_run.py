"""The dry run (lazytrain.dry_run), traps 5 and 11–15 of docs/lazy-traps.md: it materializes every
lazy parameter before the init (12), in eval mode without grad (13), seeded and without touching
the global RNG (14), once (5: idempotent below Lightning), and a config whose shapes do not fit
fails there, naming the layer and the fix (15)."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

from lazytrain import init as schemes
from lazytrain.dry_run import (
    ShapeMismatchError,
    apply_init,
    count_parameters,
    parameter_table,
    uninitialized,
)
from lazytrain.init import INIT_LAYERS, xavier
from lazytrain.models import lazy_cnn, lazy_convnet, lazy_mlp

X = torch.zeros(4, 1, 28, 28)
IMAGES = torch.randn(64, 1, 28, 28)


def layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, INIT_LAYERS)]


def state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items()}


def dry_run(net: nn.Module) -> None:
    apply_init(net, X, partial(xavier), num_classes=10)


def test_trap15_the_seed_example_names_layer_input_and_expectation():
    net = nn.Sequential(nn.Flatten(), nn.LazyLinear(256), nn.ReLU(), nn.Linear(64, 10))
    with pytest.raises(ShapeMismatchError) as err:
        dry_run(net)
    message = str(err.value)
    assert "layer 3 (Linear) got input of shape [4, 256]" in message
    assert "expects last dimension 64" in message
    assert "nn.LazyLinear" in message  # the fix


def test_trap15_conv_channel_mismatch():
    net = nn.Sequential(nn.LazyConv2d(8, 3), nn.Conv2d(4, 8, 3), nn.Flatten(), nn.LazyLinear(10))
    with pytest.raises(
        ShapeMismatchError,
        match=r"layer 1 \(Conv2d\) got input of shape \[4, 8, 26, 26\], but it expects 4 channels",
    ):
        dry_run(net)


def test_trap15_nested_modules_are_named_by_path():
    net = nn.Sequential(nn.Flatten(), nn.Sequential(nn.LazyLinear(32), nn.Linear(16, 10)))
    with pytest.raises(ShapeMismatchError, match=r"layer 1\.1 \(Linear\)"):
        dry_run(net)


def test_trap15_missing_flatten_is_caught_at_the_output():
    net = nn.Sequential(nn.LazyLinear(256), nn.ReLU(), nn.LazyLinear(10))  # infers in_features=28
    with pytest.raises(ShapeMismatchError, match=r"output has shape \[4, 1, 28, 10\].*Flatten"):
        dry_run(net)


def test_trap15_wrong_number_of_classes_is_caught_at_the_output():
    with pytest.raises(ShapeMismatchError, match=r"\[4, 7\], expected \[4, 10\].*LazyLinear\(10\)"):
        dry_run(lazy_mlp(num_classes=7))


def test_trap15_a_failed_dry_run_leaves_no_half_initialized_model_behind():
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


def test_trap12_init_before_the_dry_run_is_skipped_or_fails():
    """What apply_init avoids: d2l's type check misses LazyLinear; isinstance hits a lazy weight."""
    net = lazy_mlp()
    assert not any(type(m) is nn.Linear for m in net.modules())  # d2l's init would do nothing
    with pytest.raises(ValueError, match="uninitialized parameter"):
        nn.init.xavier_uniform_(net[1].weight)
    apply_init(net, IMAGES[:2], partial(schemes.xavier))
    assert all(type(m) is nn.Linear for m in layers(net))


def test_trap13_dry_run_leaves_batchnorm_statistics_and_mode_alone():
    net = lazy_convnet(channels=[8])
    net.train()
    apply_init(net, IMAGES[:2], partial(schemes.xavier), num_classes=10)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns
    for bn in bns:
        assert bn.num_batches_tracked.item() == 0
        assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
        assert torch.equal(bn.running_var, torch.ones_like(bn.running_var))
    assert net.training and all(m.training for m in net.modules())
    net.eval()
    apply_init(lazy_mlp(), IMAGES[:2], partial(schemes.xavier))  # other nets don't change this one
    assert not net.training


def test_dry_run_restores_eval_mode_too():
    net = lazy_mlp(dropout=0.5).eval()
    apply_init(net, IMAGES[:2], partial(schemes.xavier))
    assert not net.training


def test_sample_needs_two_examples():
    with pytest.raises(ValueError, match="at least 2 examples"):
        apply_init(lazy_mlp(), IMAGES[:1], partial(schemes.xavier))


@pytest.mark.parametrize(
    "scheme", [schemes.xavier, schemes.normal, schemes.kaiming, schemes.default]
)
def test_trap14_same_seed_same_weights_whatever_the_sample(scheme):
    """Batch 2 vs 64, different images, dropout in the net: bit-identical weights per seed."""
    a, b, c = lazy_mlp(dropout=0.5), lazy_mlp(dropout=0.5), lazy_mlp(dropout=0.5)
    apply_init(a, IMAGES[:2], partial(scheme), seed=7)
    apply_init(b, torch.randn(64, 1, 28, 28), partial(scheme), seed=7)
    apply_init(c, IMAGES[:2], partial(scheme), seed=8)
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
    apply_init(lazy_cnn(), IMAGES[:16], partial(schemes.xavier), seed=0)
    assert torch.equal(torch.rand(5), expected)


def test_trap5_apply_init_is_idempotent_on_a_materialized_model():
    net = lazy_convnet(channels=[8])
    assert apply_init(net, IMAGES[:4], partial(schemes.xavier), num_classes=10) is not None
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)  # "training"
    before = state(net)
    assert apply_init(net, IMAGES[:4], partial(schemes.normal), num_classes=10) is None
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
        apply_init(Skips(), IMAGES[:2], partial(schemes.xavier))


def test_report_has_shapes_before_and_after():
    report = apply_init(lazy_mlp(), IMAGES[:2], partial(schemes.xavier), num_classes=10)
    assert dict(report.before)["1.weight"] == "uninitialized"
    assert dict(report.after)["1.weight"] == "[256, 784]"
    assert report.total_params == 784 * 256 + 256 + 2570
    assert [t.output_shape for t in report.layers][-1] == (2, 10)


def test_uninitialized_lists_what_a_partial_forward_did_not_reach():
    net = nn.Sequential(nn.LazyLinear(256), nn.ReLU(), nn.LazyLinear(10))
    assert uninitialized(net) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    net[0](torch.rand(2, 20))
    assert uninitialized(net) == ["2.weight", "2.bias"]
    net = lazy_convnet(channels=[4])
    assert "1.running_mean" in uninitialized(net)  # lazy buffers count too (LazyBatchNorm)
