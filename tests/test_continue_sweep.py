"""A killed sweep continues in place with the same command: finished jobs are skipped with their
files untouched and their metric returned, the interrupted job resumes exactly, the jobs that
never started run — and the sweep ends with the results of one that was never interrupted."""

from __future__ import annotations

import hashlib
import json
import signal
from pathlib import Path

import pytest
import yaml

from lazytrain.compare import find_runs

from .helpers import graphs, run_script, synthetic

SEEDS = (0, 1, 2)
# 3 epochs of 4 batches: 12 steps a job; a checkpoint at each epoch's end
SHORT = ["trainer.max_epochs=3", "trainer.limit_train_batches=4", "trainer.limit_val_batches=2"]
FAULT = "+callbacks.fault._target_=tests.faults.SignalAt"


def sweep(cwd: Path, sweep_dir: Path, synthetic_dir: Path, *extra: str, code: int = 0):
    proc = run_script(
        "train.py", "-m", *synthetic(cwd, synthetic_dir), *SHORT,
        f"seed={','.join(map(str, SEEDS))}", "trusted_targets=[tests.faults]",
        f"hydra.sweep.dir={sweep_dir}", *extra, cwd=cwd,
    )  # fmt: skip
    assert proc.returncode == code, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def job(sweep_dir: Path, seed: int) -> Path:
    (found,) = [p for p in sweep_dir.iterdir() if p.name.endswith(f"seed={seed}")]
    return found


def results(sweep_dir: Path) -> dict[int, dict[str, float]]:
    """Each job's final metrics, less its wall time."""
    out = {}
    for seed in SEEDS:
        metrics = json.loads((job(sweep_dir, seed) / "result.json").read_text())["metrics"]
        out[seed] = {k: v for k, v in metrics.items() if not k.startswith("time/")}
    return out


def snapshot(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def straight(tmp_path_factory, synthetic_dir) -> dict[int, dict[str, float]]:
    cwd = tmp_path_factory.mktemp("straight")
    sweep(cwd, cwd / "S", synthetic_dir)
    return results(cwd / "S")


@pytest.mark.parametrize(
    ("sig", "step", "state"),
    [("SIGKILL", 6, "resumed"), ("SIGTERM", 7, "resumed"), ("SIGKILL", 2, "unsaved")],
)  # fmt: skip
def test_a_killed_sweep_continues_in_place_to_the_same_results(
    straight, tmp_path, synthetic_dir, sig, step, state
):
    """Stopped in job 2 (seed 1): after its first checkpoint (mid-epoch 2) or before it."""
    fault = [FAULT, f"+callbacks.fault.step={step}", f"+callbacks.fault.signal={sig}",
             "+callbacks.fault.seed=1"]  # fmt: skip
    code = -signal.SIGKILL if sig == "SIGKILL" else 128 + signal.SIGTERM
    S = tmp_path / "S"
    sweep(tmp_path, S, synthetic_dir, *fault, code=code)
    first = snapshot(job(S, 0))
    assert (job(S, 0) / "result.json").is_file() and not (job(S, 1) / "result.json").exists()
    assert not any(p.name.endswith("seed=2") for p in S.iterdir())  # never started

    proc = sweep(tmp_path, S, synthetic_dir)  # the same command again (less the fault)
    out = proc.stdout + proc.stderr
    assert f"{job(S, 0)} finished earlier (val/acc " in out and "skipped" in out
    assert snapshot(job(S, 0)) == {
        **first,
        **{k: v for k, v in snapshot(job(S, 0)).items() if k.startswith(".hydra/cont")},
    }  # its files untouched; what Hydra saved of this command lies in .hydra/continued-<time>/
    if state == "resumed":
        assert f"resuming {job(S, 1)} from " in out
        assert graphs(job(S, 1)) == 1  # the model graph once per run, not once per process
    else:
        assert f"{job(S, 1)} stopped before its first checkpoint" in out
    assert results(S) == straight
    assert "Traceback" not in out


def test_a_failed_job_is_one_line_at_the_sweeps_end_and_the_others_finish(tmp_path, synthetic_dir):
    data = [o for o in synthetic(tmp_path, synthetic_dir) if not o.startswith("data.val_size")]
    proc = run_script(
        "train.py", "-m", *data, *SHORT, "data.val_size=0.1,2.0",
        f"hydra.sweep.dir={tmp_path / 'S'}", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    bad = tmp_path / "S" / "data.batch_size=64,data.val_size=2.0"
    assert proc.stderr.splitlines()[-2:] == [
        "error: 1 of the sweep's jobs did not finish:",
        f"error: {bad}: DataError: data.val_size=2.0 holds out 1280 of 640 training images: give "
        "between 1 and 639 images, or a fraction such as 0.1",
    ]
    assert (tmp_path / "S" / "data.batch_size=64,data.val_size=0.1" / "result.json").is_file()
    assert not (bad / "result.json").exists()


def test_a_continued_sweep_that_would_change_its_runs_refuses_each_in_one_line(
    tmp_path, synthetic_dir
):
    S = tmp_path / "S"
    sweep(tmp_path, S, synthetic_dir)
    kept = snapshot(S)
    proc = sweep(tmp_path, S, synthetic_dir, "data.eval_batch_size=64", code=1)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors[0] == "error: 3 of the sweep's jobs did not finish:"
    for seed, line in zip(SEEDS, errors[1:], strict=True):
        assert line.startswith(f"error: {job(S, seed)}: ResumeError: this command changes the run")
        assert "data.eval_batch_size (" in line and "in the run)" in line

    # nothing of the runs changed: Hydra's copy of the refused command and the job's log of the
    # refusal lie in .hydra/continued-<time>/; the sweep's own files are the sweep's
    def runs(snap: dict[str, str]) -> dict[str, str]:
        sweep_files = ("multirun.yaml", "failed_jobs.jsonl")
        return {
            k: v for k, v in snap.items() if "/.hydra/continued-" not in k and k not in sweep_files
        }

    assert runs(snapshot(S)) == runs(kept)


@pytest.mark.slow
def test_a_killed_optuna_search_continues_to_its_number_of_trials(tmp_path, synthetic_dir):
    """Killed in its second trial, the same command resumes that trial (same values, same run
    directory) and runs the one left; the study ends with 3 completed trials, each scored as its
    run recorded, and the killed attempt kept as failed."""
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="pip install -e '.[optuna]'")
    optuna = pytest.importorskip("optuna")
    S = tmp_path / "S"

    def search(*extra: str, code: int = 0) -> str:
        proc = run_script(
            "train.py", "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=3",
            *synthetic(tmp_path, synthetic_dir), *SHORT, "trusted_targets=[tests.faults]",
            f"hydra.sweep.dir={S}", *extra, cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == code, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout + proc.stderr

    def runs() -> list[Path]:
        return sorted(p for p in S.iterdir() if p.name.startswith("data."))

    search(FAULT, "+callbacks.fault.step=6", "+callbacks.fault.signal=SIGKILL",
           "+callbacks.fault.job=1", code=-signal.SIGKILL)  # fmt: skip
    (done,) = [p for p in runs() if (p / "result.json").is_file()]
    (stopped,) = [p for p in runs() if p != done]
    assert (stopped / "checkpoints" / "last.ckpt").is_file()
    kept = snapshot(done)

    out = search()  # the same command, less the fault
    assert "1 of 3 trials ended, 1 stopped (proposed again first), 2 to run" in out
    assert f"resuming {stopped} from " in out and "Traceback" not in out
    assert len(runs()) == 3 and all((p / "result.json").is_file() for p in runs())
    assert snapshot(done) == kept  # never proposed again: untouched

    study = optuna.load_study(study_name="lazytrain", storage=f"sqlite:///{S / 'optuna.db'}")
    states = [t.state.name for t in study.trials]
    assert sorted(states) == ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL"], states
    failed = next(t for t in study.trials if t.state.name == "FAIL")
    again = [t for t in study.trials if t.state.name == "COMPLETE" and t.params == failed.params]
    assert len(again) == 1  # the stopped trial, completed with its own values
    recorded = {json.loads((p / "result.json").read_text())["value"] for p in runs()}
    assert {t.value for t in study.trials if t.state.name == "COMPLETE"} == recorded
    # scored by each run's best val/acc, the number compare.py reads back from its events: the
    # trial the search calls best is the run with the best val/acc
    result = yaml.safe_load((S / "optimization_results.yaml").read_text())
    best_params = {f"{k}={v}" for k, v in result["best_params"].items()}
    found = find_runs(S)
    (best,) = [r for r in found if best_params <= set(r.overrides)]
    assert best.best_val_acc == max(r.best_val_acc for r in found)
    assert result["best_value"] == pytest.approx(best.best_val_acc)

    out = search()  # a finished search: nothing left to run
    assert "3 of 3 trials ended, 0 stopped (proposed again first), 0 to run" in out
    assert len(runs()) == 3 and len(study.trials) == 4


@pytest.fixture(scope="module")
def straight_parallel(tmp_path_factory, synthetic_dir) -> tuple[Path, str]:
    """A ``launcher=parallel`` sweep never interrupted, and its output. (Joblib's workers run
    torch on fewer threads each, which sums in another order: a parallel sweep is compared with
    a parallel one.)"""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="pip install -e '.[sweep]'")
    cwd = tmp_path_factory.mktemp("straight_parallel")
    proc = sweep(cwd, cwd / "S", synthetic_dir, "launcher=parallel")
    return cwd / "S", proc.stdout + proc.stderr


@pytest.mark.slow
def test_the_parallel_preset_runs_the_jobs_in_two_worker_processes(straight_parallel):
    S, output = straight_parallel
    assert "Joblib.Parallel(n_jobs=2" in output
    assert all((job(S, seed) / "result.json").is_file() for seed in SEEDS)
    # events.out.tfevents.<time>.<host>.<pid>.<n>: the process each job ran in (3 jobs, 2 workers)
    pids = {next(job(S, seed).glob("events.out.tfevents.*")).name.split(".")[-2] for seed in SEEDS}
    assert len(pids) >= 2


@pytest.mark.slow
def test_a_parallel_sweep_whose_worker_was_killed_continues_to_the_same_results(
    straight_parallel, tmp_path, synthetic_dir
):
    """launcher=parallel: the job of seed 1 is killed in its worker process after its first
    checkpoint, which ends the sweep; the same command finishes it, that job resumed. (A SIGTERM
    takes the path the serial sweep's test takes: the job saves and ends with status 143.)"""
    fault = [FAULT, "+callbacks.fault.step=6", "+callbacks.fault.signal=SIGKILL",
             "+callbacks.fault.seed=1"]  # fmt: skip
    S = tmp_path / "S"
    sweep(tmp_path, S, synthetic_dir, "launcher=parallel", *fault, code=1)
    assert not (job(S, 1) / "result.json").exists()
    proc = sweep(tmp_path, S, synthetic_dir, "launcher=parallel")
    out = proc.stdout + proc.stderr
    assert f"resuming {job(S, 1)} from " in out and "Traceback" not in out
    assert results(S) == results(straight_parallel[0])
