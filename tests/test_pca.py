"""lazytrain.pca: a first layer fitted on the dry run's sample (its principal axes), not learned."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from lazytrain.dry_run import ShapeMismatchError, apply_init
from lazytrain.init import normal, xavier
from lazytrain.models import build_net
from lazytrain.module import LazyClassifier
from lazytrain.pca import PCA, LazyPCA
from lazytrain.train import model_and_data
from lazytrain.trust import check_targets

from .helpers import quiet_trainer


def correlated_images(n: int) -> torch.Tensor:
    """``n`` 8x8 images that vary mostly along 5 directions, each less than the one before."""
    g = torch.Generator().manual_seed(0)
    basis = torch.randn(5, 64, generator=g)
    strengths = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0])
    flat = (torch.randn(n, 5, generator=g) * strengths) @ basis
    return (flat + 0.1 * torch.randn(n, 64, generator=g) + 3.0).reshape(n, 1, 8, 8)


def test_the_dry_run_fits_the_principal_axes_of_its_sample():
    x = correlated_images(500)
    net = nn.Sequential(LazyPCA(4), nn.LazyLinear(10))
    apply_init(net, x, xavier, num_classes=10)
    pca = net[0]
    assert type(pca) is PCA and pca.weight.shape == (4, 64) and pca.in_features == 64
    with torch.no_grad():
        z = pca(x).double()
    # the principal components: centered, uncorrelated, their variances the covariance's
    # largest eigenvalues in descending order
    assert z.mean(0).abs().max() < 1e-4
    cov = torch.cov(z.T)
    assert (cov - torch.diag(cov.diagonal())).abs().max() < 1e-3 * cov.diagonal().min()
    top = torch.linalg.eigvalsh(torch.cov(x.flatten(1).double().T)).flip(0)[:4]
    torch.testing.assert_close(cov.diagonal(), top, rtol=1e-4, atol=0)
    assert (top[:-1] > top[1:]).all()
    # orthonormal axes, each signed so that its largest entry is positive
    w = pca.weight.double()
    torch.testing.assert_close(w @ w.T, torch.eye(4, dtype=torch.double), rtol=0, atol=1e-5)
    assert (w.gather(1, w.abs().argmax(1, keepdim=True)) > 0).all()


def test_a_layer_list_declares_it_and_its_checkpoints_are_trusted():
    layers = {
        "_target_": "torch.nn.Sequential",
        "_args_": [
            {"_target_": "lazytrain.pca.LazyPCA", "components": 8},
            {"_target_": "torch.nn.LazyLinear", "out_features": 10},
        ],
    }
    check_targets({"model": layers})  # what a checkpoint's rebuild checks first
    net = build_net(layers, num_classes=10)
    apply_init(net, correlated_images(100), xavier, num_classes=10)
    assert type(net[0]) is PCA and net[1].in_features == 8


def test_trap18_the_axes_are_buffers_no_init_or_optimizer_touches_and_every_build_fits_the_same(
    cfg_factory,
):
    cfg = cfg_factory("model.pca=16", "sample_size=256", "~scheduler")
    model, _ = model_and_data(cfg)
    pca = model.net[1]
    assert type(pca) is PCA and pca.weight.shape == (16, 784)
    assert not [name for name, _ in model.named_parameters() if name.startswith("net.1.")]
    assert {"net.1.weight", "net.1.bias"} <= set(model.state_dict())
    optimized = [p for group in model.configure_optimizers().param_groups for p in group["params"]]
    assert all(p.shape[-1] != 784 for p in optimized)  # the next layer takes 16 inputs
    # an init scheme reaches the learned layers only, and a rebuild fits bit-identical axes
    again, _ = model_and_data(cfg_factory("model.pca=16", "sample_size=256", "init=normal"))
    assert torch.equal(again.net[1].weight, pca.weight) and torch.equal(again.net[1].bias, pca.bias)
    fitted = pca.weight.clone()
    apply_init(model.net, torch.zeros(2, 1, 28, 28), normal)  # materialized: left alone
    assert torch.equal(pca.weight, fitted)


def test_trap18_a_checkpoint_reloads_the_trained_projection_not_one_fitted_anew(
    cfg_factory, tmp_path
):
    """The rebuild replays the dry run on as many zero images as the training run's sample (2
    would be refused), then the checkpoint's buffers replace what was fitted to the zeros."""
    model, datamodule = model_and_data(cfg_factory("model.pca=16", "sample_size=256"))
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    quiet_trainer(tmp_path, callbacks=[checkpoint], enable_checkpointing=True).fit(
        model, datamodule=datamodule
    )
    loaded = LazyClassifier.load_from_checkpoint(tmp_path / "ckpt" / "last.ckpt").eval()
    assert torch.equal(loaded.net[1].weight, model.net[1].weight)
    x = datamodule.dry_run_sample(64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_trap18_the_dry_run_sample_holds_no_validation_image(cfg_factory):
    _, datamodule = model_and_data(cfg_factory())
    train_idx, val_idx = datamodule.split()
    assert val_idx.min() < train_idx[99]  # the first 100 raw images include held-out ones
    expected = datamodule.normalization(datamodule.load().train_x[train_idx[:100]])
    assert torch.equal(datamodule.dry_run_sample(100), expected)


@pytest.mark.parametrize(
    ("rows", "components", "message"),
    [
        (32, 64, "PCA(components=64) is fitted on the dry run's sample of 32 inputs and needs "
                 "at least 64: set sample_size=8192, or fewer components"),
        (2000, 1000, "PCA(components=1000) cannot keep more axes than its inputs have values "
                     "(784): set at most 784 components"),
    ],
)  # fmt: skip
def test_a_sample_too_small_to_fit_is_refused_naming_the_fix(rows, components, message):
    net = nn.Sequential(nn.Flatten(), LazyPCA(components), nn.LazyLinear(10))
    with pytest.raises(ShapeMismatchError, match="PCA") as refused:
        apply_init(net, torch.rand(rows, 1, 28, 28), xavier, num_classes=10)
    assert message in str(refused.value)


@pytest.mark.parametrize("components", [0, -3, 2.5])
def test_components_must_be_a_positive_integer(components):
    with pytest.raises(ValueError, match="PCA components must be a positive integer"):
        LazyPCA(components)
