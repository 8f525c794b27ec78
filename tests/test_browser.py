"""TensorBoard as a user sees it: a real ``tensorboard`` server on two short runs, its HTTP data
API, and its SCALARS, TEXT and HPARAMS tabs in headless Chromium (screenshots in tmp_path)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import CNN_PARAMS, FEW_BATCHES, MLP_PARAMS, run_script

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
# No sandbox (root in a container), and nothing that reaches outside this machine.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
RUNS = ["model=lazy_cnn", "model=lazy_mlp"]
# TensorBoard's run list: the two runs and ".", the sweep's HPARAMS table (lazytrain/hparams_table.py)
LISTED = sorted([".", *RUNS])
# The HPARAMS columns TensorBoard shows by default (lazytrain.tracking.SHOWN_FIRST, by name).
HPARAMS_SHOWN = ["hardware", "init", "model", "optimizer.lr", "seed"]


@pytest.fixture(scope="module")
def logdir(real_data_root, tmp_path_factory) -> Path:
    """Two short real runs (one per model), named as a sweep names them."""
    cwd = tmp_path_factory.mktemp("browser")
    runs = cwd / "runs"
    proc = run_script(
        "train.py", "-m", "model=lazy_mlp,lazy_cnn", f"data.root={real_data_root}",
        f"hydra.sweep.dir={runs}", *FEW_BATCHES, cwd=cwd,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return runs


def get_json(url: str, body: dict | None = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "X-XSRF-Protected": "1"}
    with urllib.request.urlopen(urllib.request.Request(url, data, headers), timeout=10) as r:
        return json.load(r)


@pytest.fixture(scope="module")
def tensorboard(logdir, tmp_path_factory) -> Iterator[str]:
    """``tensorboard --logdir`` on a port the OS picks (no free-port guess another process could
    take first), up once both runs are loaded."""
    log = tmp_path_factory.mktemp("tensorboard") / "tensorboard.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir),
             "--host", "127.0.0.1", "--port", "0"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90

        def waiting(what: str) -> None:
            assert server.poll() is None, f"tensorboard exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"{what} in 90 s:\n{log.read_text()}"
            time.sleep(0.5)

        while not (serving := re.search(r" at (http://\S+?)/? \(Press", log.read_text())):
            waiting("no 'TensorBoard ... at http://...' line")
        url = serving.group(1)
        while True:
            try:
                if sorted(get_json(f"{url}/data/runs")) == LISTED:
                    break
            except OSError:
                pass  # not answering yet
            waiting(f"runs {LISTED} not loaded by {url}")
        yield url
    finally:
        os.kill(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(server.pid, signal.SIGKILL)
            server.wait()


def test_data_api_serves_runs_scalars_and_hparams(tensorboard):
    assert sorted(get_json(f"{tensorboard}/data/runs")) == LISTED
    for run in RUNS:
        query = urllib.parse.urlencode({"run": run, "tag": "val/acc"})
        points = get_json(f"{tensorboard}/data/plugin/scalars/scalars?{query}")
        assert [step for _, step, _ in points] == [8, 16]  # [wall time, step, value] per epoch
        assert all(0.0 < acc <= 1.0 for _, _, acc in points)

    # The HISTOGRAMS tab's data: every weight counted once at each step it was written (step 0,
    # each epoch's end), in buckets that tile the weights' range (lazytrain.histograms)
    query = urllib.parse.urlencode({"run": "model=lazy_mlp", "tag": "weights/1.weight"})
    series = get_json(f"{tensorboard}/data/plugin/histograms/histograms?{query}")
    assert [step for _, step, _ in series] == [0, 8, 16]  # [wall time, step, buckets]
    for _, _, buckets in series:  # [left, right, count] each
        assert sum(count for _, _, count in buckets) == 784 * 256
        assert all(a[1] == b[0] for a, b in zip(buckets, buckets[1:], strict=False))

    # The request the HPARAMS tab sends (tensorboard/plugins/hparams/api.proto).
    request = {
        "experimentName": "",
        "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
        "colParams": [],
        "startIndex": 0,
        "sliceSize": 100,
        "includeMetrics": True,
    }
    # the columns of both model families, whichever run TensorBoard read first
    experiment = get_json(f"{tensorboard}/data/plugin/hparams/experiment", {"experimentName": ""})
    columns = {info["name"] for info in experiment["hparamInfos"]}
    assert {"model.hidden", "model.channels", "model.kernel_size", "params"} <= columns
    reply = get_json(f"{tensorboard}/data/plugin/hparams/session_groups", request)
    groups = {g["name"]: g for g in reply["sessionGroups"]}
    assert sorted(groups) == RUNS
    for run, group in groups.items():
        assert group["hparams"]["model"] == run.split("=")[1]
        assert (
            group["hparams"]["params"]
            == {"model=lazy_cnn": CNN_PARAMS, "model=lazy_mlp": MLP_PARAMS}[run]
        )
        metrics = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        assert set(metrics) == {"val/acc", "val/loss", "test/acc", "test/loss", "time/run_seconds"}
        assert 0.0 < metrics["test/acc"] <= 1.0 and metrics["time/run_seconds"] > 0


def screenshot_hparams(page, url: str, path: Path, runs: list[str]) -> None:
    """TensorBoard's default HPARAMS table view (nothing clicked), once every run is in it."""
    page.goto(f"{url}/#hparams")
    for run in runs:
        page.get_by_text(run, exact=True).first.wait_for(timeout=30_000)
    page.wait_for_timeout(500)
    page.screenshot(path=path)


@pytest.fixture
def page():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 800})
        finally:
            browser.close()


def test_tabs_in_a_browser(tensorboard, page, tmp_path):
    screenshot_hparams(page, tensorboard, tmp_path / "hparams.png", RUNS)
    table = page.locator("#sessionGroupsTable")
    # the grid's cells are not in DOM order: read the headers left to right as shown
    shown = table.locator(".table-header").evaluate_all(
        "cells => cells.map(c => [c.getBoundingClientRect().x, c.innerText.trim()])"
    )
    headers = [text for _, text in sorted(shown)]
    # the default view, nothing ticked: the columns a person compares, then the metrics
    assert headers == [
        "Trial ID", "Show Metrics", *HPARAMS_SHOWN,
        "test/acc", "test/loss", "time/run_seconds", "val/acc", "val/loss",
    ]  # fmt: skip
    for column in ("model.hidden", "model.channels"):  # both families', in the columns to tick
        page.get_by_text(column, exact=True).first.wait_for(timeout=10_000)
    cells = {t.strip() for t in table.locator(".table-cell").all_inner_texts()}
    cores = len(os.sched_getaffinity(0))
    assert {*RUNS, "lazy_cnn", "lazy_mlp", "xavier", f"CPU, {cores} cores"} <= cells

    # Time Series opens on the metrics, not on a stray `epoch` staircase or on histograms
    page.goto(f"{tensorboard}/?forceSVG=true#timeseries")
    page.get_by_text("test/acc").first.wait_for(timeout=30_000)
    groups = page.locator("metrics-card-group-toolbar").all_inner_texts()
    # a group's toolbar reads its name, then its card count ("train4 cards")
    names = [re.sub(r"\d+ cards?$", "", " ".join(g.split())).strip() for g in groups if g.strip()]
    assert names[:4] == ["test", "time", "train", "val"] and "epoch" not in names, names
    page.screenshot(path=tmp_path / "timeseries.png")

    page.goto(f"{tensorboard}/#text")
    page.get_by_text("parameter_shapes").first.wait_for(timeout=30_000)
    page.get_by_text("uninitialized").first.wait_for(timeout=30_000)
    page.screenshot(path=tmp_path / "text.png")

    page.goto(f"{tensorboard}/#histograms")
    page.get_by_text("weights/1.weight").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1000)  # the charts draw after their cards appear
    page.screenshot(path=tmp_path / "histograms.png")

    page.goto(f"{tensorboard}/#scalars")
    page.locator("tf-scalar-dashboard tf-tag-filterer input").fill("^val/acc$")
    page.get_by_text("tag: val/acc").first.wait_for(timeout=30_000)
    page.screenshot(path=tmp_path / "scalars.png")

    for name in ("hparams", "timeseries", "text", "histograms", "scalars"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
