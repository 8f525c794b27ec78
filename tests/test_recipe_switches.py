"""The switches the speedrun recipes are built from — EMA of the weights, test-time flip, a learning
rate of its own for biases and norm scales — each off by default, each doing what it says where
it says (validation, the final test, checkpoints, scripts/eval.py). Exact resume and DDP with all
three on are in test_resume.py and test_ddp.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from lazytrain.averaging import EMA
from lazytrain.config import ConfigValueError
from lazytrain.evaluate import evaluate, load_trained
from lazytrain.train import model_and_data, train

from .helpers import quiet_trainer, read_events


def test_switches_are_off_by_default(cfg_factory):
    cfg = cfg_factory()
    assert (cfg.ema_decay, cfg.test_time_flip, cfg.bias_lr_factor) == (None, False, 1.0)
    model, _ = model_and_data(cfg)
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(model.evaluation_logits(x), model(x), rtol=0, atol=0)


def test_test_time_flip_scores_the_mean_of_each_image_and_its_mirror(cfg_factory, tmp_path):
    model, datamodule = model_and_data(cfg_factory("test_time_flip=true"))
    model.eval()
    x = torch.randn(4, 1, 28, 28)
    mirrored = (model.net(x) + model.net(x.flip(-1))) / 2
    torch.testing.assert_close(model.evaluation_logits(x), mirrored)
    assert not torch.allclose(model.evaluation_logits(x), model(x))
    # the test metrics Lightning logs are those of the flipped-and-averaged logits
    t = quiet_trainer(tmp_path, limit_test_batches=1)
    loss = t.test(model, datamodule=datamodule, verbose=False)[0]["test/loss"]
    x, y = next(iter(datamodule.test_dataloader()))
    with torch.no_grad():
        expected = float(F.cross_entropy(model.evaluation_logits(x), y))
    assert loss == pytest.approx(expected, rel=1e-5)


def test_bias_lr_factor_scales_the_learning_rate_of_1d_parameters_only(cfg_factory, tmp_path):
    model, datamodule = model_and_data(
        cfg_factory("bias_lr_factor=4", "optimizer.lr=0.002", "scheduler=onecycle")
    )
    t = quiet_trainer(tmp_path, max_steps=3)
    t.fit(model, datamodule=datamodule)
    matrices, vectors = t.optimizers[0].param_groups
    assert [p.ndim for p in vectors["params"]] == [1, 1]
    # one-cycle peaks at 10x each group's own rate
    assert (matrices["max_lr"], vectors["max_lr"]) == pytest.approx((0.02, 0.08))
    assert vectors["lr"] == pytest.approx(4 * matrices["lr"])  # the schedule scales both alike


def test_ema_weights_are_what_validation_test_checkpoints_and_eval_use(cfg_factory, tmp_path):
    cfg = cfg_factory("ema_decay=0.5", "model.hidden=[16]", "optimizer.lr=0.01")
    train(cfg)
    run = tmp_path / "run"
    best_path = next((run / "checkpoints").glob("best-*.ckpt"))
    best = torch.load(best_path, weights_only=True)
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    # state_dict holds the average; the raw weights and the average's count beside it (resume)
    assert best["state_dict"].keys() == best["current_model_state"].keys()
    key = "net.1.weight"
    assert not torch.equal(last["state_dict"][key], last["current_model_state"][key])
    assert int(last["averaging_state"]["n_averaged"]) == last["global_step"] == 16

    datamodule = instantiate(cfg.data)
    datamodule.setup("test")

    def test_loss(model) -> float:
        with torch.no_grad():
            batches = list(datamodule.test_dataloader())
            total = sum(F.cross_entropy(model(x), y, reduction="sum") for x, y in batches)
        return float(total) / sum(len(y) for _, y in batches)

    averaged, _ = load_trained(best_path)
    raw, _ = load_trained(best_path)
    raw.load_state_dict(best["current_model_state"])
    expected = test_loss(averaged)
    assert test_loss(raw) != pytest.approx(expected, rel=1e-3)  # the two differ measurably
    # The run's final test scored the best checkpoint's averaged weights (Lightning's callback
    # alone would have put the raw ones back before testing), and so does scripts/eval.py.
    assert read_events(run).scalars["test/loss"][-1][1] == pytest.approx(expected, rel=1e-5)
    assert evaluate(best_path, datamodule, accelerator="cpu").loss == pytest.approx(
        expected, rel=1e-5
    )


def test_ema_decay_outside_0_1_is_refused_with_the_fix():
    with pytest.raises(
        ConfigValueError, match=r"ema_decay=1.5: give a value in \(0, 1\), e.g. 0.99"
    ):
        EMA(1.5)


@pytest.mark.parametrize("fn", ["avg_fn", "multi_avg_fn"])
def test_the_host_counted_average_updates_as_torchs_does(fn):
    """The same weights and count as torch's AveragedModel, update for update, a state loaded
    between them included (its count is then read from the device once)."""
    from torch.optim.swa_utils import AveragedModel, get_ema_avg_fn, get_ema_multi_avg_fn

    from lazytrain.averaging import HostCountedAverage

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    kwargs = {fn: (get_ema_avg_fn if fn == "avg_fn" else get_ema_multi_avg_fn)(0.9)}
    theirs, ours = AveragedModel(net, **kwargs), HostCountedAverage(net, **kwargs)
    for step in range(4):
        if step == 2:
            ours.load_state_dict(theirs.state_dict())
        with torch.no_grad():
            net[0].weight.add_(torch.randn_like(net[0].weight))
        theirs.update_parameters(net)
        ours.update_parameters(net)
        for a, b in zip(theirs.state_dict().values(), ours.state_dict().values(), strict=True):
            assert torch.equal(a, b)
    assert ours.host_count == 4 == int(ours.n_averaged)
