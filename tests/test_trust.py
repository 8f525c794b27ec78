"""A checkpoint from elsewhere cannot run code: only allowlisted targets are rebuilt from it."""

from __future__ import annotations

import runpy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from lazytrain.checkpoints import CheckpointError, CheckpointMismatchError
from lazytrain.module import LazyClassifier
from lazytrain.trust import UntrustedTargetError, check_targets

from .helpers import ROOT, run_script

EVAL_MAIN = runpy.run_path(str(ROOT / "scripts" / "eval.py"), run_name="eval_script")["main"]
SEQUENTIAL = {
    "_target_": "torch.nn.Sequential",
    "_args_": [{"_target_": "torch.nn.Flatten"}, {"_target_": "torch.nn.LazyLinear", "out_features": 10}],
}  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synthetic_dir) -> tuple[Path, list[str]]:
    """One real 2-batch checkpoint, and the overrides that evaluate on the synthetic data."""
    base = tmp_path_factory.mktemp("trust")
    data = [
        f"data.root={base / 'data'}",
        f"data.search_dirs=[{synthetic_dir}]",
        "data.download=false",
        "data.val_size=128",
        "trainer.accelerator=cpu",
    ]
    proc = run_script(
        "train.py", *data, f"hydra.run.dir={base / 'run'}", "data.batch_size=64",
        "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1", "callbacks.progress_bar.refresh_rate=0", cwd=base,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return base / "run" / "checkpoints" / "last.ckpt", data


def craft(trained_ckpt: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], Any]) -> Path:
    """A copy of the real checkpoint in ``tmp_path/run/checkpoints/``, edited by ``edit``."""
    checkpoint = torch.load(trained_ckpt, weights_only=True)
    edit(checkpoint)
    path = tmp_path / "run" / "checkpoints" / "crafted.ckpt"
    path.parent.mkdir(parents=True)
    torch.save(checkpoint, path)
    return path


def files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def eval_main(*overrides: str) -> str | None:
    """scripts/eval.py's main in this process: its exit message, or None if it succeeded."""
    try:
        EVAL_MAIN(list(overrides))
    except SystemExit as exit:
        return exit.code
    return None


# --- check_targets alone ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "torch.nnx.Foo",  # a prefix is matched by whole components
        "torch.nn",  # the package itself is no layer
        "lazytrain.models_evil.x",
        "torch.nn.../../x",  # only dotted identifier paths
        "torch.nn.Linear ",
        "torch.nn.Linear\n",
        "torch.nn.Linear.__class__",
        3,
        None,
        "builtins.open",
        "os.system",
        "subprocess.run",
        "pathlib.Path.touch",
        "torch.save",
        "torch.load",
        "lazytrain.init.torch.save",  # a re-export: what it resolves to must be allowed too
        "torch.nn.modules.module.torch.save",
        "torch.nn.Linear.register_forward_hook",  # a method, not a layer
        "torch.nn.modules.module.register_module_forward_hook",
        "torch.nn.utils.parametrize.register_parametrization",
        "torch.optim.swa_utils.update_bn",
        "torch.nn.NoSuchLayer",
    ],
)
def test_check_targets_refuses(target):
    tree = {
        "model": {**SEQUENTIAL, "_args_": [{"_target_": "torch.nn.ReLU"}, {"_target_": target}]}
    }
    with pytest.raises(UntrustedTargetError) as refused:
        check_targets(tree)
    message = str(refused.value)
    assert "\n" not in message and "model._args_[1]" in message
    if isinstance(target, str) and target.isascii() and target.strip() == target:
        assert repr(target).strip("'") in message


@pytest.mark.parametrize(
    "target",
    [
        "torch.nn.Linear",
        "torch.nn.LazyConv2d",
        "torch.nn.init.normal_",
        "torch.nn.functional.relu",
        "torch.optim.AdamW",
        "torch.optim.lr_scheduler.LambdaLR",
        "lazytrain.models.lazy_mlp",
        "lazytrain.pca.LazyPCA",
        "lazytrain.init.xavier",
        "lazytrain.schedules.one_cycle",
    ],
)
def test_check_targets_accepts_allowlisted(target):
    check_targets({"x": [{"_target_": target, "_partial_": True}]})


def test_every_target_conf_uses_for_a_model_is_allowlisted():
    groups = ["model", "init", "optimizer", "scheduler", "data", "experiment"]
    for path in sorted(p for g in groups for p in (ROOT / "conf" / g).glob("*.yaml")):
        text = path.read_text().replace("${", "{")  # a checkpoint holds resolved values
        tree = yaml.safe_load(text) or {}
        check_targets({k: v for k, v in tree.items() if k not in ("hydra", "defaults", "trainer")})


def test_trusted_targets_extend_the_allowlist_by_whole_components():
    check_targets({"_target_": "pathlib.Path"}, ["pathlib"])
    check_targets({"_target_": "pathlib.Path"}, "pathlib")  # a single string is one prefix
    with pytest.raises(UntrustedTargetError, match=r"trusted_targets=\[pathlib\]"):
        check_targets({"_target_": "pathlib.Path"}, ["pathli"])
    with pytest.raises(UntrustedTargetError, match="dotted module prefixes"):
        check_targets({}, ["../mypkg"])


def test_interpolations_are_refused():
    # Resolved when instantiating, ${oc.create:...} would build a target no walk ever saw.
    payload = "${oc.create:[{_target_: builtins.open, _args_: [/tmp/x, w]}]}"
    with pytest.raises(UntrustedTargetError, match=r"interpolation at model\._args_"):
        check_targets({"model": {"_target_": "torch.nn.Sequential", "_args_": payload}})


# --- malicious checkpoints: refused by eval.py and by load_from_checkpoint ------------------


def payloads(victim: Path, created: Path) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Each: the target a refusal must name, where it sits, the hyperparameters it replaces."""
    write_victim = {"_target_": "builtins.open", "_args_": [str(victim), "w"]}
    path = {"_target_": "pathlib.Path", "_args_": [str(created)]}
    touch = {"_target_": "pathlib.Path.touch", "_args_": [path]}
    save = {"_target_": "torch.save", "_args_": [[1], str(created)]}
    nested = {
        "_target_": "torch.nn.Sequential",
        "_args_": [{"_target_": "torch.nn.Flatten"}, write_victim],
    }
    save_later = {"_target_": "torch.save", "_partial_": True, "f": str(created)}
    copy = {
        "_target_": "shutil.copyfile",
        "_partial_": True,
        "src": str(victim),
        "dst": str(created),
    }
    write_text = {"_target_": "pathlib.Path.write_text", "_partial_": True, "data": "x"}
    reexport = {**save_later, "_target_": "lazytrain.init.torch.save"}  # torch.save, re-exported
    created_by = f"${{oc.create:[{{_target_: builtins.open, _args_: [{created}, w]}}]}}"
    interpolated = {"_target_": "torch.nn.Sequential", "_args_": created_by}
    return {
        "open": ("builtins.open", "model", {"model": write_victim}),
        "touch": ("pathlib.Path.touch", "model", {"model": touch}),
        "save": ("torch.save", "model", {"model": save}),
        "nested": ("builtins.open", "model._args_[1]", {"model": nested}),
        "partial": ("torch.save", "init", {"init": save_later}),
        "optimizer": ("shutil.copyfile", "optimizer", {"optimizer": copy}),
        "scheduler": ("pathlib.Path.write_text", "scheduler", {"scheduler": write_text}),
        "reexport": ("lazytrain.init.torch.save", "init", {"init": reexport}),
        "interpolation": ("interpolation", "model._args_", {"model": interpolated}),
    }


@pytest.mark.parametrize("payload", list(payloads(Path(), Path())))
def test_malicious_checkpoint_is_refused_before_anything_runs(trained, tmp_path, payload):
    trained_ckpt, data = trained
    victim, created = tmp_path / "victim.txt", tmp_path / "created"
    victim.write_text("precious")
    target, where, hparams = payloads(victim, created)[payload]
    ckpt = craft(trained_ckpt, tmp_path, lambda c: c["hyper_parameters"].update(hparams))
    before = files(tmp_path)

    with pytest.raises(UntrustedTargetError) as refused:
        LazyClassifier.load_from_checkpoint(ckpt, weights_only=True)
    assert target in str(refused.value) and f"at {where}" in str(refused.value)

    message = eval_main(f"ckpt_path={ckpt}", *data)
    assert message.startswith("error: UntrustedTargetError: ") and "\n" not in message
    assert target in message and f"at {where}" in message
    if target != "interpolation":  # an interpolation cannot be allowed
        assert "trusted_targets=[" in message

    assert files(tmp_path) == before  # the victim intact, nothing created, no eval/, no events
    assert victim.read_text() == "precious" and not created.exists()


def test_eval_cli_refuses_an_untrusted_target_in_one_line(trained, tmp_path):
    trained_ckpt, data = trained
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    evil = {"_target_": "builtins.open", "_args_": [str(victim), "w"]}
    ckpt = craft(trained_ckpt, tmp_path, lambda c: c["hyper_parameters"].update(model=evil))
    before = files(tmp_path)
    proc = run_script("eval.py", f"ckpt_path={ckpt}", *data, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: UntrustedTargetError: checkpoint {ckpt} asks to build 'builtins.open' at model: "
        "not an allowed target; if you trust it, allow it: trusted_targets=[builtins] on the "
        "command line (or in a config)"
    ]
    assert victim.read_text() == "precious" and files(tmp_path) == before


# --- not a checkpoint, or weights that do not fit ---------------------------------------------


RANDOM_BYTES = torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "content",
    [RANDOM_BYTES.to(torch.uint8).numpy().tobytes(), b"just some text\n", b""],
    ids=["random-bytes", "text", "empty"],
)
def test_eval_one_line_for_a_file_that_is_not_a_checkpoint(trained, tmp_path, content):
    ckpt = tmp_path / "run" / "checkpoints" / "notes.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(content)
    before = files(tmp_path)
    message = eval_main(f"ckpt_path={ckpt}", *trained[1])
    assert message.startswith(f"error: CheckpointError: {ckpt} is not a loadable checkpoint")
    assert "\n" not in message and "weights_only=False" not in message
    with pytest.raises(CheckpointError):
        LazyClassifier.load_from_checkpoint(ckpt)
    assert files(tmp_path) == before


def test_eval_one_line_for_weights_that_do_not_fit_their_model(trained, tmp_path):
    def shrink(checkpoint):
        checkpoint["state_dict"]["net.1.weight"] = torch.zeros(128, 784)

    ckpt = craft(trained[0], tmp_path, shrink)
    before = files(tmp_path)
    message = eval_main(f"ckpt_path={ckpt}", *trained[1])
    assert message.startswith("error: CheckpointMismatchError: ") and "\n" not in message
    assert "size mismatch for net.1.weight" in message and "[128, 784]" in message
    with pytest.raises(CheckpointMismatchError):
        LazyClassifier.load_from_checkpoint(ckpt)
    assert files(tmp_path) == before


# --- what still loads ------------------------------------------------------------------------


def with_model(model_config: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """An edit giving a checkpoint another model config and weights that fit it."""

    def edit(checkpoint: dict[str, Any]) -> None:
        hparams = {**checkpoint["hyper_parameters"], "model": SEQUENTIAL}
        checkpoint["state_dict"] = LazyClassifier(**{**hparams, "model": model_config}).state_dict()
        checkpoint["hyper_parameters"]["model"] = model_config

    return edit


def test_yaml_only_layer_list_loads_and_evaluates(trained, tmp_path, capsys):
    layers = yaml.safe_load((ROOT / "conf" / "model" / "lazy_layers.yaml").read_text())
    ckpt = craft(trained[0], tmp_path, with_model(layers))
    model = LazyClassifier.load_from_checkpoint(ckpt, weights_only=True)
    assert type(model.net).__name__ == "Sequential" and len(model.net) == 8
    assert eval_main(f"ckpt_path={ckpt}", *trained[1]) is None
    assert "test accuracy" in capsys.readouterr().out
    assert list((tmp_path / "run" / "eval").glob("*.png"))


def test_a_module_outside_the_allowlist_loads_when_trusted(trained, tmp_path, monkeypatch, capsys):
    # Importing the module leaves a mark: a refusal must not even import it.
    (tmp_path / "trusttest_tinynet.py").write_text(
        "from pathlib import Path\n"
        "from torch import nn\n"
        "Path(__file__).with_name('imported').touch()\n"
        "def tiny():\n"
        "    return nn.Sequential(nn.Flatten(), nn.LazyLinear(10))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    ckpt = craft(trained[0], tmp_path, with_model(SEQUENTIAL))  # the same layout as tiny()
    checkpoint = torch.load(ckpt, weights_only=True)
    checkpoint["hyper_parameters"]["model"] = {"_target_": "trusttest_tinynet.tiny"}
    torch.save(checkpoint, ckpt)

    with pytest.raises(UntrustedTargetError, match=r"trusted_targets=\[trusttest_tinynet\]"):
        LazyClassifier.load_from_checkpoint(ckpt)
    message = eval_main(f"ckpt_path={ckpt}", *trained[1])
    assert "'trusttest_tinynet.tiny' at model" in message
    assert not (tmp_path / "imported").exists() and "trusttest_tinynet" not in sys.modules

    model = LazyClassifier.load_from_checkpoint(ckpt, trusted_targets=["trusttest_tinynet"])
    assert torch.equal(model.net[1].weight, checkpoint["state_dict"]["net.1.weight"])
    capsys.readouterr()
    assert (
        eval_main(f"ckpt_path={ckpt}", *trained[1], "trusted_targets=[trusttest_tinynet]") is None
    )
    assert "test accuracy" in capsys.readouterr().out
    assert (tmp_path / "imported").exists()
    sys.modules.pop("trusttest_tinynet", None)
