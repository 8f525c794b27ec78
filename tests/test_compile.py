"""``compile=true``: torch.compile of the materialized net, after the dry run and the init.
Checkpoints keep the plain net's keys, so a run switches compile on or off at a resume, and a
compiled run's checkpoint evaluates without it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from .helpers import assert_refused, evaluate_copy, graphs, read_events, run_script, synthetic

pytestmark = pytest.mark.slow
PROBE = "+callbacks.probe._target_=tests.probes.CompileProbe"
TORCH_WARNING = re.compile(r"^W\d{4} [\d:.]+ ", re.MULTILINE)


def train(cwd: Path, *overrides: str) -> dict:
    """One process of a run through the CLI; what the probe saw in it."""
    proc = run_script("train.py", *overrides, "trusted_targets=[tests.probes]", cwd=cwd)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    # no warning of Lightning's, and none of torch's own (glog's "W1207 09:59:26.624 ..." lines,
    # e.g. "No CUDA runtime is found" from a CUDA build of torch without a GPU)
    assert "WARNING" not in output and not TORCH_WARNING.search(output), output[-6000:]
    return json.loads((cwd / "run" / "compile_probe.json").read_text())


def last(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)


def test_compile_on_and_off_across_resumes_with_plain_checkpoints(tmp_path, synthetic_dir):
    run = tmp_path / "run"
    first = train(
        tmp_path, *synthetic(tmp_path, synthetic_dir), "compile=true", "trainer.max_epochs=1",
        f"hydra.run.dir={run}", PROBE,
    )  # fmt: skip
    assert first == {"traced": True}
    assert graphs(run) == 1  # the GRAPHS tab shows the compiled net, traced as the plain one
    compiled_keys, epoch = sorted(last(run)["state_dict"]), last(run)["global_step"]
    assert compiled_keys and not any("_orig_mod" in k for k in compiled_keys)
    # the compiled run's checkpoint, resumed eagerly; that one's, compiled again
    assert train(tmp_path, f"resume={run}", "trainer.max_epochs=2", "compile=false") == {
        "traced": False
    }
    assert train(tmp_path, f"resume={run}", "trainer.max_epochs=3", "compile=true") == {
        "traced": True
    }
    assert sorted(last(run)["state_dict"]) == compiled_keys
    events = read_events(run).scalars
    assert [step for step, _ in events["val/acc"]] == [epoch, 2 * epoch, 3 * epoch]
    # the best checkpoint, evaluated without compile, scores what the compiled test scored
    _, _, printed = evaluate_copy(run, tmp_path / "eval", *synthetic(tmp_path, synthetic_dir))
    assert f"test accuracy {events['test/acc'][-1][1]:.2%}" in printed


def test_an_unknown_compile_mode_is_refused_in_one_line(tmp_path, synthetic_dir):
    proc = run_script(
        "train.py", *synthetic(tmp_path, synthetic_dir), "compile=fastest",
        f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
    )  # fmt: skip
    assert_refused(proc, "compile=fastest is not a torch.compile mode", "reduce-overhead")
    assert not (tmp_path / "run" / "checkpoints").exists()
