"""Runs that survive: exact resume at any step, kills at any moment, interruption saves that
never replace a checkpoint with an older or foreign state, and refusals that leave nothing
resumable-looking behind. Every test checks what is left on disk."""

from __future__ import annotations

import ast
import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from lazytrain.atomic_write import atomic_write
from lazytrain.checkpoints import LastCheckpoint
from lazytrain.epoch_state import NonFiniteLossError
from lazytrain.train import model_and_data

from .helpers import (
    assert_refused,
    fresh_command,
    quiet_trainer,
    read_events,
    run_script,
    script_env,
    synthetic,
    write_fashion_mnist,
)

FAULT = "+callbacks.fault._target_=tests.faults.SignalAt"


def last(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return last(run_dir)["state_dict"]


def train(tmp_path: Path, *overrides: str, code: int = 0) -> subprocess.CompletedProcess:
    proc = run_script("train.py", *overrides, cwd=tmp_path)
    assert proc.returncode == code, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def curves(run_dir: Path, prefixes: tuple[str, ...]) -> dict[str, list[tuple[int, float]]]:
    """Scalar curves as TensorBoard shows them (a resumed run's purge applied)."""
    return {k: v for k, v in read_events(run_dir).scalars.items() if k.startswith(prefixes)}


def final_metrics(run_dir: Path) -> list[dict[str, float]]:
    """The ``final metrics`` lines of train.log, less the wall time (``time/run_seconds``)."""
    lines = (run_dir / "train.log").read_text().splitlines()
    shown = [line.split("final metrics: ")[1].split(" (outputs")[0] for line in lines if "final metrics" in line]  # fmt: skip
    return [
        {k: v for k, v in ast.literal_eval(m).items() if not k.startswith("time/")} for m in shown
    ]


def assert_same_run(a: Path, b: Path, views: tuple[str, ...] = ("train/", "val/", "weights/")):
    """Same weights (and raw weights beside an EMA), optimizer state, final metrics, and
    TensorBoard curves of ``views``."""
    for part in ("state_dict", "current_model_state"):
        wa, wb = last(a).get(part, {}), last(b).get(part, {})
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    oa, ob = last(a)["optimizer_states"][0]["state"], last(b)["optimizer_states"][0]["state"]
    assert all(torch.equal(oa[i]["exp_avg_sq"], ob[i]["exp_avg_sq"]) for i in oa)
    assert final_metrics(a) == final_metrics(b) and len(final_metrics(b)) == 1
    assert curves(a, views) == curves(b, views)


# The default recipe (warm-up + cosine, label smoothing) with augmentation and Dropout, every
# source of randomness in an epoch, and the speedrun switches that keep state (EMA) or change
# what is scored (test-time flip) or stepped (bias_lr_factor). 8 batches an epoch, 3 epochs.
EXACT = [
    "model.dropout=0.2",
    "ema_decay=0.9",
    "test_time_flip=true",
    "bias_lr_factor=2",
    "+data.augment._target_=lazytrain.augment.Augment",
    "+data.augment.crop_padding=2",
    "+data.augment.flip=true",
    "+data.augment.erasing=0.5",
    "trainer.max_epochs=3",
]


@pytest.fixture(scope="module")
def uninterrupted(synthetic_dir, tmp_path_factory) -> tuple[list[str], Path]:
    tmp_path = tmp_path_factory.mktemp("uninterrupted")
    overrides = [*synthetic(tmp_path, synthetic_dir), *EXACT]
    train(tmp_path, *overrides, f"hydra.run.dir={tmp_path / 'run'}")
    return overrides, tmp_path / "run"


@pytest.mark.slow
def test_a_stop_inside_a_gradient_accumulation_window_resumes_exactly(tmp_path, synthetic_dir):
    """accumulate_grad_batches=2, stopped after 5 batches (2 steps and half a window): the
    resumed window adds its 6th batch to the 5th's gradient, as the straight run does."""
    overrides = [*synthetic(tmp_path, synthetic_dir), "trainer.max_epochs=2",
                 "trainer.accumulate_grad_batches=2"]  # fmt: skip
    straight, run = tmp_path / "straight", tmp_path / "run"
    train(tmp_path, *overrides, f"hydra.run.dir={straight}")
    fault = ["+callbacks.fault._target_=tests.faults.SignalAtBatch", "+callbacks.fault.batch=5",
             "+callbacks.fault.signal=SIGTERM"]  # fmt: skip
    train(tmp_path, *overrides, f"hydra.run.dir={run}", *fault, code=128 + signal.SIGTERM)
    assert last(run)["global_step"] == 2 and "accumulated_gradients" in last(run)
    train(tmp_path, f"resume={run}", "trusted_targets=[tests.faults]")
    assert "accumulated_gradients" not in last(run)  # saved at epoch ends, on a window's edge
    assert_same_run(straight, run)


SWA = ["callbacks=swa", "callbacks.swa.swa_epoch_start=1"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("feature", "step", "sig", "code"),
    [
        (["trainer.val_check_interval=0.5"], 6, "SIGKILL", -signal.SIGKILL),
        (SWA, 13, "SIGTERM", 128 + signal.SIGTERM),
    ],
    ids=["killed-after-a-mid-epoch-validation", "stopped-while-averaging"],
)  # fmt: skip
def test_features_with_state_resume_exactly(tmp_path, synthetic_dir, feature, step, sig, code):
    """val_check_interval=0.5: killed at step 6, the run resumes from the checkpoint of the
    validation at step 4, mid-epoch. SWA (from epoch 1 of 3): stopped mid-epoch while averaging,
    its average, count and schedule resume. Either way the run ends as the straight run does."""
    overrides = [*synthetic(tmp_path, synthetic_dir), "trainer.max_epochs=3", *feature]
    straight, run = tmp_path / "straight", tmp_path / "run"
    train(tmp_path, *overrides, f"hydra.run.dir={straight}")
    fault = [FAULT, f"+callbacks.fault.step={step}", f"+callbacks.fault.signal={sig}"]
    train(tmp_path, *overrides, f"hydra.run.dir={run}", *fault, code=code)
    assert last(run)["global_step"] % 8  # a mid-epoch checkpoint
    train(tmp_path, f"resume={run}", "trusted_targets=[tests.faults]")
    assert_same_run(straight, run, views=("train/", "val/"))


@pytest.mark.slow
def test_a_run_killed_after_its_last_epoch_resumes_to_the_straight_runs_result(
    uninterrupted, tmp_path
):
    """Killed between its last checkpoint and its result (as its test starts): the resume trains
    nothing more and still reports the last validation's metrics, as the straight run does."""
    overrides, straight = uninterrupted
    run = tmp_path / "run"
    fault = [
        "+callbacks.fault._target_=tests.faults.SignalAtTest",
        "+callbacks.fault.signal=SIGKILL",
    ]
    train(tmp_path, *overrides, f"hydra.run.dir={run}", *fault, code=-signal.SIGKILL)
    assert not (run / "result.json").exists()
    train(tmp_path, f"resume={run}", "trusted_targets=[tests.faults]")
    result, expected = (json.loads((r / "result.json").read_text()) for r in (run, straight))
    drop_time = lambda metrics: {k: v for k, v in metrics.items() if not k.startswith("time/")}  # noqa: E731
    assert drop_time(result["metrics"]) == drop_time(expected["metrics"])
    assert result["value"] == expected["value"] and final_metrics(run) == final_metrics(straight)


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_stop_at_a_random_step_and_resume_is_bit_identical(uninterrupted, tmp_path, sig):
    overrides, straight = uninterrupted
    step = random.Random(sig).randrange(9, 23)  # inside epoch 1 or 2, never at its end
    run = tmp_path / "run"
    proc = train(
        tmp_path, *overrides, f"hydra.run.dir={run}", FAULT, f"+callbacks.fault.step={step}",
        f"+callbacks.fault.signal={sig}", code=128 + signal.SIGTERM,
    )  # fmt: skip
    assert last(run)["global_step"] == step and step % 8  # stopped mid-epoch, state saved
    assert "dataloader is not resumable" not in proc.stdout + proc.stderr
    # bare but for trusting the fault-injection callback the run's own config names
    proc = train(tmp_path, f"resume={run}", "trusted_targets=[tests.faults]")
    assert f"resuming {run} from {run / 'checkpoints' / 'last.ckpt'} (step {step})" in proc.stdout
    assert "dataloader is not resumable" not in proc.stdout + proc.stderr
    assert_same_run(straight, run)
    # the resumed epoch's wall time counts the part before the interruption, not since 1970
    epoch_seconds = [v for _, v in read_events(run).scalars["time/epoch_seconds"]]
    assert len(epoch_seconds) == 3 and max(epoch_seconds) < 60
    # and the run's wall time both processes' (each at least its own start-up and epochs)
    ((_, run_seconds),) = read_events(run).scalars["time/run_seconds"]
    assert sum(epoch_seconds) < run_seconds < 600


def mid_write(ckpt_dir: Path) -> bool:
    """A write replacing an existing last.ckpt is under way."""
    return (ckpt_dir / "last.ckpt").exists() and any(ckpt_dir.glob(".last.ckpt.tmp*"))


def kill_when(proc: subprocess.Popen, moment, timeout: float = 120.0) -> bool:
    """SIGKILL ``proc`` as soon as ``moment()`` holds (polled every millisecond); False if the
    process ended first."""
    deadline = time.time() + timeout
    while proc.poll() is None and not moment() and time.time() < deadline:
        time.sleep(0.001)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    return alive


@pytest.mark.slow
def test_sigkill_at_any_moment_even_mid_write_loses_nothing(tmp_path):
    """kill -9 in the middle of checkpoint writes and at random moments: every resume starts
    from a whole checkpoint, and the run ends exactly where an uninterrupted one does."""
    data = write_fashion_mnist(tmp_path / "fmnist", n_train=3000, n_test=256)
    overrides = [
        *synthetic(tmp_path, data),
        "model.hidden=[1024,1024]",
        "trainer.max_epochs=6",
        "data.batch_size=128",
        "trainer.log_every_n_steps=5",
    ]  # fmt: skip  (checkpoints of ~30 MB, so that writes last long enough to be hit)
    straight, run = tmp_path / "straight", tmp_path / "run"
    train(tmp_path, *overrides, f"hydra.run.dir={straight}")
    ckpt_dir = run / "checkpoints"
    rng = random.Random(0)
    command = fresh_command("train.py", *overrides, f"hydra.run.dir={run}")
    kills = []
    for attempt in range(6):
        proc = subprocess.Popen(command, cwd=tmp_path, env=script_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        if attempt % 2 == 0:
            kills.append("mid-write" if kill_when(proc, lambda: mid_write(ckpt_dir)) else "ended")
        else:  # a random moment once training is under way
            delay = rng.uniform(0.0, 1.5)
            started: list[float] = []

            def later(delay: float = delay, started: list[float] = started) -> bool:
                if not started and (ckpt_dir / "last.ckpt").exists():
                    started.append(time.time())
                return bool(started) and time.time() > started[0] + delay

            kills.append("random" if kill_when(proc, later) else "ended")
        assert last(run)["global_step"] > 0  # whatever the moment: a whole, loadable checkpoint
        command = fresh_command("train.py", f"resume={run}")
    assert kills.count("mid-write") >= 2, kills
    train(tmp_path, f"resume={run}")
    assert last(run)["epoch"] == 5 and not list(ckpt_dir.glob(".*.tmp*"))
    # What was logged after the last checkpoint and not yet flushed dies with the process: the
    # epoch's weight statistics can be missing; the metrics' curves are whole.
    assert_same_run(straight, run, views=("train/", "val/"))


def test_a_kill_in_the_middle_of_a_write_leaves_the_old_file_whole(tmp_path):
    target = tmp_path / "last.ckpt"
    target.write_bytes(b"old, complete")
    pid = os.fork()
    if pid == 0:  # the child: half a file, then killed for real

        def half(f) -> None:
            f.write(b"new, half")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        try:
            atomic_write(target, half)
        finally:  # never back into pytest's loop: a second pytest would run the rest of the suite
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
    assert target.read_bytes() == b"old, complete"
    atomic_write(target, lambda f: f.write(b"new, complete"))
    assert target.read_bytes() == b"new, complete"
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["last.ckpt"]


@pytest.fixture(scope="module")
def finished_short_run(tmp_path_factory, synthetic_dir) -> tuple[list[str], Path]:
    """A finished 2-batch run on the synthetic data, trained once for the module."""
    cwd = tmp_path_factory.mktemp("short_run")
    data = synthetic(cwd, synthetic_dir)
    run = cwd / "run"
    train(
        cwd, *data, f"hydra.run.dir={run}", "trainer.max_epochs=1", "trainer.limit_train_batches=2"
    )
    return data, run


@pytest.fixture
def short_run(tmp_path, finished_short_run) -> tuple[list[str], Path]:
    """A copy of that run for one test (a run directory holds no path of its own): its
    overrides and its directory."""
    data, trained = finished_short_run
    return data, Path(shutil.copytree(trained, tmp_path / "run"))


def snapshot(run: Path) -> dict[Path, bytes]:
    """The run's files, but its logs and the record Hydra keeps of each command
    (``.hydra/resumed-<time>/``, written before lazytrain runs: the refused attempt's config)."""
    return {
        p: p.read_bytes()
        for p in run.rglob("*")
        if p.is_file() and p.suffix != ".log" and "resumed-" not in p.parent.name
    }


def test_resume_refuses_overrides_that_change_the_run_listing_each(tmp_path, short_run):
    data, run = short_run
    kept = snapshot(run)
    proc = train(
        tmp_path, f"resume={run}", "model.hidden=[32]", "optimizer.lr=0.5", "seed=3",
        "trainer.max_epochs=3", code=1,
    )  # fmt: skip
    assert (
        f"ResumeError: this command changes the run in {run}: model.hidden ([256] in the run), "
        "optimizer.lr (0.001 in the run), seed (0 in the run)."
    ) in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    assert snapshot(run) == kept and "continue with" not in (run / "train.log").read_text()


def test_a_bare_resume_continues_any_run_with_its_own_configuration(tmp_path, synthetic_dir):
    """Finding: a run started with optimizer=sgd crashed on resume (KeyError: 'step') and its
    last.ckpt was overwritten with an AdamW model; trainer.limit_* overrides were dropped."""
    run = tmp_path / "run"
    overrides = ["optimizer=sgd", "optimizer.lr=0.05", "trainer.limit_train_batches=3"]
    train(
        tmp_path,
        *synthetic(tmp_path, synthetic_dir),
        *overrides,
        "trainer.max_epochs=1",
        f"hydra.run.dir={run}",
    )
    proc = train(
        tmp_path, f"resume={run}", "trainer.max_epochs=2", "callbacks.progress_bar.refresh_rate=0"
    )
    # a resumed run's checkpoint directory is its own: no warning that it is not empty
    assert "WARNING" not in proc.stdout + proc.stderr, proc.stdout[-3000:] + proc.stderr[-3000:]
    checkpoint = last(run)
    assert checkpoint["hyper_parameters"]["optimizer"]["_target_"] == "torch.optim.SGD"
    assert checkpoint["global_step"] == 6 and checkpoint["epoch"] == 1  # 3 batches an epoch, kept
    assert checkpoint["run_config"]["config"]["trainer"]["max_epochs"] == 2  # what it ran with
    assert checkpoint["run_config"]["choices"]["optimizer"] == "sgd"
    assert read_events(run).hparams["optimizer"] == "sgd"


def test_a_run_made_with_lightnings_early_stopping_resumes_with_lazytrains(tmp_path, synthetic_dir):
    """Runs made before conf/callbacks/early_stopping named lazytrain.monitors.EarlyStopping
    recorded Lightning's class: a bare resume builds today's (not refused as a target only the
    checkpoint names), and the run's stopping state loads under the same key."""
    run, key = tmp_path / "run", "EarlyStopping{'monitor': 'val/acc', 'mode': 'max'}"
    train(
        tmp_path, *synthetic(tmp_path, synthetic_dir), "callbacks=early_stopping",
        "callbacks.early_stopping._target_=lightning.pytorch.callbacks.EarlyStopping",
        "callbacks.early_stopping.min_delta=1.0", "trainer.limit_train_batches=2",
        "trainer.max_epochs=1", f"hydra.run.dir={run}",
    )  # fmt: skip
    assert last(run)["callbacks"][key]["wait_count"] == 0  # the first epoch improved on nothing
    train(tmp_path, f"resume={run}", "trainer.max_epochs=2")
    resumed = last(run)
    assert resumed["global_step"] == 4
    callbacks = resumed["run_config"]["config"]["callbacks"]
    assert callbacks["early_stopping"]["_target_"] == "lazytrain.monitors.EarlyStopping"
    assert resumed["callbacks"][key]["wait_count"] == 1  # the run's best score was loaded


@pytest.mark.parametrize("damage", ["truncated", "not a checkpoint"])
def test_a_resume_that_cannot_load_leaves_the_checkpoint_as_it_was(tmp_path, short_run, damage):
    data, run = short_run
    path = run / "checkpoints" / "last.ckpt"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_text("not a checkpoint")
    kept = snapshot(run)
    proc = train(tmp_path, f"resume={run}", code=1)
    out = proc.stdout + proc.stderr
    assert f"ResumeError: {path} is not a loadable checkpoint" in proc.stdout
    assert "weights_only=False" not in out and "Traceback" not in out
    assert snapshot(run) == kept  # no new event file, the damaged file untouched
    assert "continue with" not in (run / "train.log").read_text()


def test_refused_ckpt_path_leaves_no_resumable_debris(tmp_path, short_run):
    data, run = short_run
    source = run / "checkpoints" / "last.ckpt"
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(os.urandom(4096))
    cases = {
        "other-model": ([f"ckpt_path={source}", "model.hidden=[32]"], "CheckpointMismatchError: "
                        f"{source} does not fit the configured model (net.1.weight: (256, 784) in the file, (32, 784) in the model"),
        "other-optimizer": ([f"ckpt_path={source}", "optimizer=sgd"], "CheckpointMismatchError: "
                            f"{source} holds the state of another optimizer than SGD"),
        "not-a-checkpoint": ([f"ckpt_path={junk}"], f"CheckpointError: {junk} is not a loadable checkpoint"),
    }  # fmt: skip
    for name, (overrides, message) in cases.items():
        new = tmp_path / name
        proc = train(tmp_path, *data, *overrides, f"hydra.run.dir={new}", code=1)
        out = proc.stdout + proc.stderr
        assert message in proc.stdout, out[-2000:]
        assert "Traceback" not in out and "weights_only=False" not in out
        assert not (new / "checkpoints").exists() and not list(new.glob("events.*"))
        assert "continue with" not in (new / "train.log").read_text()
        assert message in (new / "train.log").read_text()  # says why it stopped


@pytest.mark.parametrize(
    "where",
    [("model",), ("callbacks", "tracking"), ("data", "augment"), ("logger", "mlflow")],
    ids=".".join,
)  # a tracker conf/logger/ declares is trusted as declared there, not as a checkpoint has it
def test_resume_never_builds_what_a_checkpoints_config_names(tmp_path, short_run, where):
    """A run directory from elsewhere is untrusted: its last.ckpt's configuration may only name
    what the user's own config, the allowlist or trusted_targets admit."""
    data, run = short_run
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    path = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(path, weights_only=True)
    node = checkpoint["run_config"]["config"]
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = {"_target_": "builtins.open", "_args_": [str(victim), "w"]}
    torch.save(checkpoint, path)
    kept = snapshot(run)
    proc = train(tmp_path, f"resume={run}", code=1)
    assert "UntrustedTargetError: " in proc.stdout and "builtins.open" in proc.stdout
    assert f"at {'.'.join(where)}" in proc.stdout and "trusted_targets=" in proc.stdout
    assert victim.read_text() == "precious" and snapshot(run) == kept


def test_resume_of_a_directory_without_a_run_creates_nothing(tmp_path):
    nowhere = tmp_path / "nowhere"
    proc = train(tmp_path, f"resume={nowhere}", code=1)
    assert proc.stderr.strip() == (
        f"error: nothing to resume in {nowhere}: {nowhere}/checkpoints/last.ckpt does not exist "
        "(nothing was created). Give the directory of a run, e.g. outputs/runs/<time>"
    )
    assert not nowhere.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_failure_before_training_saves_nothing(cfg_factory, tmp_path):
    """Finding: the interruption save ran for any exception, so a checkpoint that failed to
    restore was replaced by the untrained model."""
    model, datamodule = model_and_data(cfg_factory())
    ckpt_dir = tmp_path / "ckpt"
    t = quiet_trainer(
        tmp_path, callbacks=[LastCheckpoint(dirpath=ckpt_dir)], enable_checkpointing=True
    )
    t.fit(model, datamodule=datamodule)
    saved = (ckpt_dir / "last.ckpt").read_bytes()
    model, datamodule = model_and_data(
        cfg_factory("optimizer=sgd")
    )  # restoring AdamW's state fails
    t = quiet_trainer(
        tmp_path,
        callbacks=[LastCheckpoint(dirpath=ckpt_dir)],
        enable_checkpointing=True,
        max_epochs=2,
    )
    with pytest.raises(KeyError):
        t.fit(model, datamodule=datamodule, ckpt_path=ckpt_dir / "last.ckpt", weights_only=True)
    assert (ckpt_dir / "last.ckpt").read_bytes() == saved
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["last.ckpt"]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_last_checkpoint_and_the_run_resumes(tmp_path, synthetic_dir, sig):
    data = synthetic(tmp_path, synthetic_dir)
    run = tmp_path / "run"
    cmd = fresh_command("train.py", *data, f"hydra.run.dir={run}", "trainer.max_epochs=500")
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.time() + 120
    for line in proc.stdout:  # wait until training is under way
        if "epoch 1 (step" in line or time.time() > deadline:
            break
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert (
        f"{'Ctrl-C' if sig == signal.SIGINT else 'SIGTERMException'} at step"
        in (run / "train.log").read_text()
    )
    interrupted_at = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert interrupted_at > 0
    assert "val/acc" in read_events(run).scalars  # events flushed
    train(tmp_path, *data, f"resume={run}", "trainer.max_epochs=4")
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 3


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
    cfg_factory, tmp_path
):
    model, datamodule = model_and_data(
        cfg_factory("optimizer=sgd", "optimizer.lr=1e12", "optimizer.momentum=0")
    )
    ckpt_dir = tmp_path / "ckpt"
    ckpt_dir.mkdir()
    (ckpt_dir / "last.ckpt").write_bytes(b"the last good checkpoint")
    callback = LastCheckpoint(dirpath=ckpt_dir)
    t = quiet_trainer(
        tmp_path,
        callbacks=[callback],
        enable_checkpointing=True,
        max_epochs=3,
        limit_train_batches=8,
        log_every_n_steps=1,
    )
    with pytest.raises(
        NonFiniteLossError,
        match=r"became NaN or infinite at step \d+ \(epoch 0\).*gradient_clip_val",
    ):
        t.fit(model, datamodule=datamodule)
    assert (ckpt_dir / "last.ckpt").read_bytes() == b"the last good checkpoint"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=transformer"], "Could not find 'model/transformer'"),
        (["init=orthogonal"], "Available options in 'init'"),
        (["optimizer=lion"], "Available options in 'optimizer'"),
        (["model=lazy_cnn", "model.channels=[6,-1]"], "channels must be positive integers"),
        (["model.pca=64"], "sample of 32 inputs and needs at least 64: set sample_size=8192"),
        (["data.search_dirs=[]", "data.root=EMPTY"], "Fashion-MNIST not found"),
        (["sample_size=1"], "the dry-run sample needs at least 2 examples (got shape [1, 1, 28, "
         "28]): set sample_size=32"),
        (["data.batch_size=0"], "DataError: data.batch_size=0: give a positive whole number of "
         "images (in lazytrain.datamodule.FashionMNISTDataModule)"),
        (["optimizer.lr=-1"], "ConfigValueError: optimizer (optimizer.lr=-1, "
         "optimizer.weight_decay=0.01, optimizer.fused=None): Invalid learning rate: -1: give a "
         "value it accepts"),
        (["scheduler.warmup_fraction=2"], "ConfigValueError: scheduler (scheduler."
         "warmup_fraction=2, scheduler.final_factor=0.0): warmup_fraction=2 is no fraction of "
         "the run's steps: give a value it accepts"),
        (["init=normal", "init.std=-1"], "ConfigValueError: init.std=-1: the normal init needs "
         "std > 0, e.g. 0.01"),
        (["label_smoothing=2"], "ConfigValueError: label_smoothing=2: give a value in [0, 1]"),
        (["ema_decay=1.5"], "ConfigValueError: ema_decay=1.5: give a value in (0, 1), e.g. 0.99"),
        (["seed=abc"], "ConfigValueError: seed=abc: give a whole number, e.g. seed=0"),
        (["model.hidden=[0]"], "ValueError: hidden sizes must be positive integers, got [0] (in "
         "lazytrain.models.lazy_mlp)"),  # one line, not Hydra's two
    ],
)  # fmt: skip
def test_bad_input_is_refused_before_training_with_the_fix(overrides, message, tmp_path):
    overrides = [o.replace("EMPTY", str(tmp_path / "empty")) for o in overrides]
    run_dir = tmp_path / "run"
    proc = run_script(
        "train.py", *overrides, "data.download=false", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert_refused(proc, message)
    assert not list(run_dir.glob("events.*")) and not (run_dir / "checkpoints").exists()


@pytest.mark.parametrize("where", ["hydra.run.dir", "hydra.sweep.dir"])
def test_unwritable_output_directory_is_refused_in_one_line(tmp_path, where):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    args = [f"{where}={blocker / 'run'}", *(["-m"] if where == "hydra.sweep.dir" else [])]
    proc = run_script("train.py", *args, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"error: cannot write the run's outputs to {blocker / 'run'}: {blocker} is a file, not a "
        f"directory. Set {where} to a writable directory"
    )
    assert blocker.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == [
        "a-file"
    ]


def test_unwritable_data_root_is_refused(tmp_path, synthetic_dir):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    from lazytrain.fashion_mnist import FashionMNIST
    from lazytrain.images import DataError

    with pytest.raises(DataError, match="set data.root to a writable directory"):
        FashionMNIST.load(blocker / "data", [str(synthetic_dir)], download=False)
    assert blocker.read_text() == "keep me"
    assert os.path.isfile(blocker)


def test_a_new_run_never_mixes_into_an_existing_one(tmp_path, short_run):
    """Finding: the refused run had already replaced the run's .hydra/config.yaml (Hydra saves
    it before the job starts), so compare.py read the refused command as the run's config."""
    data, run = short_run
    kept = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}  # .hydra/, train.log too
    proc = run_script(
        "train.py", *data, f"hydra.run.dir={run}", "trainer.max_epochs=1", cwd=tmp_path
    )
    assert_refused(proc, f"RunExistsError: {run} already holds a run", f"resume={run}")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == kept
