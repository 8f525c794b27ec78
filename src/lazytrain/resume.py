"""``resume=<run dir>``: continue a run in place, under the configuration it was trained with.

Every checkpoint carries the run's own configuration (:class:`RunConfig`), so a bare
``resume=R`` needs no overrides repeated, whatever the run was started with, and a resume of a
resumed run keeps what the first resume extended. The command may add overrides that only
extend or relocate the run (:data:`~lazytrain.config_keys.RESUME_MAY_ADD`); any other override must agree with the run, and
every one that does not is listed in one refusal.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from lazytrain.checkpoints import CheckpointError, read_checkpoint
from lazytrain.config import CONF, group_option
from lazytrain.config_keys import LENGTH, RESUME_MAY_ADD, covers
from lazytrain.run_dir import FINISHED, NEW, UNSAVED, read_result, run_state
from lazytrain.trust import check_targets

log = logging.getLogger(__name__)

CONFIG_KEY = "run_config"  # in the checkpoint: {"config": ..., "choices": ...}
# Callbacks conf/callbacks has since declared with a class of lazytrain's, as a run made before
# recorded them: the run resumes with today's class (its state loads: the same state key), not
# refused as a target only its checkpoint names.
REPLACED_CALLBACKS = {
    "lightning.pytorch.callbacks.EarlyStopping": "lazytrain.monitors.EarlyStopping"
}


class ResumeError(ValueError):
    """``resume=<dir>`` names no resumable run, or this command would change the run."""


@dataclass(frozen=True)
class Start:
    """How a run starts: its configuration, its config-group choices, the checkpoint to
    continue from (``None`` for a fresh start) and that checkpoint's contents."""

    cfg: DictConfig
    choices: dict[str, str]
    ckpt_path: str | None = None
    checkpoint: dict[str, Any] | None = None


class RunConfig(L.Callback):
    """Writes the run's configuration and config-group choices into every checkpoint."""

    def __init__(self, cfg: DictConfig, choices: Mapping[str, str]) -> None:
        self.record = {
            "config": OmegaConf.to_container(cfg, resolve=False),
            "choices": dict(choices),
        }

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[CONFIG_KEY] = self.record


def last_checkpoint(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints" / "last.ckpt"


def foreign(run: Any, own: Any) -> Any:
    """What a run's configuration holds beyond the user's own config (``own``, composed from
    conf/ and the command line, which is trusted): every entry equal to the user's at the same
    path is dropped. What remains — another ``_target_``, a new interpolation — comes from the
    checkpoint, and must pass :func:`lazytrain.trust.check_targets`."""
    if isinstance(run, dict):
        mine = own if isinstance(own, dict) else {}
        return {k: foreign(v, mine.get(k)) for k, v in run.items() if k not in mine or v != mine[k]}
    if isinstance(run, list) and isinstance(own, list) and len(run) == len(own):
        return [foreign(r, o) for r, o in zip(run, own, strict=True)]
    return run


def with_run_choices(command: dict[str, Any], run: Mapping[str, Any]) -> dict[str, Any]:
    """The command's config with what the run chose where a bare resume does not repeat it, as
    conf/ declares it: each tracker of ``logger=[tensorboard,mlflow]``, and each callback of
    ``callbacks=[early_stopping,rich]`` (Hydra records no choice for a list, so a callback is
    matched by its key and ``_target_`` among those conf/callbacks declares). The user's own
    config too, so a bare resume continues the run's trackers and callbacks while a
    checkpoint's changes to them are still checked."""
    trackers = {
        name: group_option("logger", name)
        for name in run.get("logger") or {}
        if (CONF / "logger" / f"{name}.yaml").is_file()
    }
    options = [group_option("callbacks", p.stem) for p in sorted(CONF.glob("callbacks/*.yaml"))]
    callbacks = dict(command.get("callbacks") or {})
    for key, node in (run.get("callbacks") or {}).items():
        if not isinstance(node, Mapping) or _target(callbacks.get(key)) == _target(node):
            continue  # the command's own already declares it
        for option in options:
            if _target(option.get(key)) == _target(node):
                callbacks[key] = option[key]
    return {
        **command,
        "logger": {**trackers, **(command.get("logger") or {})},
        "callbacks": callbacks,
    }


def _target(node: Any) -> str | None:
    return node.get("_target_") if isinstance(node, Mapping) else None


def _overridden_key(override: str) -> str:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_override(override).key_or_group


def _extends(key: str) -> bool:
    return covers(RESUME_MAY_ADD, key)


def start(cfg: DictConfig, choices: Mapping[str, str], overrides: Sequence[str]) -> Start:
    """The configuration this command runs: its own, or with ``resume=R`` the run's, extended by
    the command's :data:`~lazytrain.config_keys.RESUME_MAY_ADD` overrides. ``overrides`` are the command line's (Hydra's
    ``overrides.task``); ``choices`` its config-group choices."""
    if not cfg.get("resume"):
        ckpt = cfg.get("ckpt_path")
        return Start(cfg, dict(choices), ckpt, read_checkpoint(ckpt) if ckpt else None)
    run_dir = Path(cfg.resume)
    path = last_checkpoint(run_dir)
    if not path.is_file():
        raise ResumeError(f"nothing to resume in {run_dir}: {path} does not exist")
    try:
        checkpoint = read_checkpoint(path)
    except CheckpointError as err:
        raise ResumeError(
            f"{err}. The run cannot be resumed from it; its other files are left as they are"
        ) from err
    record = checkpoint.get(CONFIG_KEY)
    if record is None:
        raise ResumeError(
            f"{path} records no run configuration (made by an older lazytrain): start a new run "
            f"from it with ckpt_path={path} and the run's overrides"
        )
    for node in (record["config"].get("callbacks") or {}).values():
        if isinstance(node, dict) and node.get("_target_") in REPLACED_CALLBACKS:
            node["_target_"] = REPLACED_CALLBACKS[node["_target_"]]
    command = OmegaConf.to_container(cfg, resolve=False)
    # The checkpoint names the callables the run is rebuilt from: only the user's own, the
    # allowlist and the command's trusted_targets (never the run's own list) are built.
    trusted = with_run_choices(command, record["config"])
    check_targets(foreign(record["config"], trusted), cfg.get("trusted_targets") or (), str(path))
    run_cfg = OmegaConf.create(record["config"])
    differ = []
    for override in overrides:
        key = _overridden_key(override)
        if key in ("resume", "ckpt_path"):
            continue
        if key in choices or key in record["choices"]:  # a config group: the run's own choice
            if choices.get(key) != record["choices"].get(key):
                differ.append(f"{key} ({record['choices'].get(key)} in the run)")
            continue
        ours = OmegaConf.select(OmegaConf.create(command), key, default=None)
        if ours == OmegaConf.select(run_cfg, key, default=None):
            continue
        if _extends(key):
            OmegaConf.update(run_cfg, key, ours, force_add=True)
        else:
            differ.append(f"{key} ({OmegaConf.select(run_cfg, key, default=None)} in the run)")
    if differ:
        raise ResumeError(
            f"this command changes the run in {run_dir}: {', '.join(differ)}. A resume continues "
            f"the run as it was; it may only add {', '.join(RESUME_MAY_ADD)}. Drop those overrides "
            f"(a bare resume={run_dir} works), or start a new run"
        )
    run_cfg.resume, run_cfg.ckpt_path = str(run_dir), None
    run_cfg.trusted_targets = cfg.get("trusted_targets") or []  # the command's, not the file's
    for stale in path.parent.glob(".*.tmp*"):  # half-written by a process that was killed
        stale.unlink(missing_ok=True)
    return Start(run_cfg, dict(record["choices"]), str(path), checkpoint)


@dataclass(frozen=True)
class Continuation:
    """What a sweep job does with what its directory already holds (:func:`continue_in_place`):
    return a finished run's ``recorded`` metric, continue it (``cfg.resume`` set), or
    ``restart`` a run stopped before its first checkpoint (its events purged from step 0)."""

    recorded: float | None = None
    restart: bool = False


def continue_in_place(
    cfg: DictConfig, choices: Mapping[str, str], overrides: Sequence[str]
) -> Continuation:
    """A sweep job whose directory already holds its run (the sweep was interrupted, and the
    same command runs again). A finished run: its recorded metric, nothing trained or written.
    An interrupted run: ``cfg.resume`` set to it, so the job continues it exactly as
    ``resume=`` does. Either way the command is checked against the run (:func:`start`: what
    it would change is refused in one line), once. A run stopped before its first checkpoint starts
    again; a new job is just that."""
    run_dir = Path(cfg.output_dir)
    state = run_state(run_dir)
    if state == UNSAVED:
        log.info("%s stopped before its first checkpoint: training it from the start", run_dir)
        return Continuation(restart=True)
    if state == NEW:
        return Continuation()
    cfg.resume = str(run_dir)
    result = read_result(run_dir) if state == FINISHED else None
    if result is not None:  # checked here; an interrupted run is checked by train's own start()
        length = {key: OmegaConf.select(start(cfg, choices, overrides).cfg, key) for key in LENGTH}
        if (
            result.get("optimized_metric") == cfg.optimized_metric
            and result.get("length") == length
        ):
            cfg.resume = None
            log.info(
                "%s finished earlier (%s %.4f): skipped, its files left as they are",
                run_dir, cfg.optimized_metric, result["value"],
            )  # fmt: skip
            return Continuation(recorded=float(result["value"]))
    return Continuation()
