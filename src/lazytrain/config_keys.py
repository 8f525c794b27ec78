"""Which config keys say what an experiment is, and which only where, how or how long it ran.

One classification for every place that needs it: run directory names (``conf/hydra``'s
``exclude_keys``, checked equal to :func:`run_name_patterns` by a test), TensorBoard's HPARAMS
row, compare.py's grouping (two runs that differ only in such a key are one configuration) and
what a ``resume=`` may add. A key names itself and everything under it (``callbacks`` covers
``callbacks.progress_bar.refresh_rate``).
"""

from __future__ import annotations

from collections.abc import Mapping

# Where a run writes, and where it finds its data (and which code it may build from there).
RUN_PLACE = ("project_dir", "output_dir", "resume", "ckpt_path", "trainer.default_root_dir")
DATA_PLACE = ("data.root", "data.search_dirs", "data.download", "data.cache_dir", "trusted_targets")
# What ran it: the same experiment on other hardware. The ``trainer`` group's choice
# (``trainer=gpu``, ``trainer=ddp``) is hardware too; its keys are not all (``trainer.precision``).
HARDWARE = ("trainer.accelerator", "trainer.devices", "trainer.num_nodes", "trainer.strategy")
HARDWARE_CHOICE = "trainer"
# How it computed or showed what it did, with the same result: the evaluation batch, kernel
# choices, what is logged, validated, summarized or optimized by a sweeper.
VIEW = (
    "data.eval_batch_size", "compile", "channels_last", "optimizer.fused",
    "print_config", "trainer.deterministic",
    "trainer.benchmark", "trainer.fast_dev_run", "callbacks", "logger", "optimized_metric",
    "trainer.log_every_n_steps", "trainer.enable_progress_bar", "trainer.enable_model_summary",
    "trainer.enable_checkpointing",
    "trainer.limit_val_batches", "trainer.limit_test_batches", "trainer.limit_predict_batches",
    "trainer.val_check_interval", "trainer.check_val_every_n_epoch", "trainer.num_sanity_val_steps",
)  # fmt: skip
NOT_THE_EXPERIMENT = RUN_PLACE + DATA_PLACE + HARDWARE + VIEW

# What a person calls the run: shown in HPARAMS and lineage, selected by (compare.py --where),
# but neither the experiment (compare.py's groups) nor part of a run's directory name.
LABELS = ("tags", "notes")

# How long it trains: part of the experiment (HPARAMS, compare.py), but a resume may extend it,
# and a run keeps its directory name when it is extended.
LENGTH = ("trainer.max_epochs", "trainer.max_steps", "trainer.limit_train_batches")
# Config groups that run experiments (a sweep, a launcher, a search), not define them.
RUNNERS = ("sweep", "launcher", "hparams_search", "hydra")
# The seeds: a column of their own, and what a compare.py group spans.
SEEDS = ("seed", "data.shuffle_seed")


def flatten(config: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """A nested config as dotted keys: ``{"model.hidden": [256], "init.std": 0.05, ...}`` (an
    empty mapping stays a value of its own, so no key disappears)."""
    flat: dict[str, object] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def covers(keys: tuple[str, ...], key: str) -> bool:
    """Whether ``key`` (a dotted config key, or an override's: ``+``/``~`` allowed) is one of
    ``keys`` or lies under one."""
    key = key.lstrip("+~")
    return any(key == k or key.startswith(f"{k}.") for k in keys)


def in_hparams(key: str) -> bool:
    """A column of the HPARAMS row (a config key or a group's choice): what the experiment is,
    its length and seed included; not the ``trainer`` group's choice (hardware)."""
    if key == HARDWARE_CHOICE:
        return False
    return not covers(NOT_THE_EXPERIMENT + RUNNERS + ("data.shuffle_seed",), key)


def in_configuration(key: str) -> bool:
    """Part of what compare.py groups runs by: the experiment, over its seeds."""
    return not covers(NOT_THE_EXPERIMENT + RUNNERS + SEEDS + LABELS, key)


# Overrides a resume may add: the data found elsewhere, other hardware, more epochs or steps,
# another view of progress, compiled or not. Anything else must agree with the run: even a VIEW
# key (a callback's or a logger's state lives in the checkpoint), and the run's own place.
RESUME_MAY_ADD = DATA_PLACE + HARDWARE + (
    "trainer.max_epochs", "trainer.max_steps", "callbacks.progress_bar", "compile", "print_config",
)  # fmt: skip


def run_name_patterns() -> list[str]:
    """``hydra.job.config.override_dirname.exclude_keys``: a run's directory is named by its
    overrides less these (Hydra matches them as ``fnmatch`` patterns against override keys).
    The recipe (``experiment``, ``speedrun``) is left out too: its name would repeat in every run
    of a sweep."""
    keys = ("experiment", "speedrun", *RUNNERS, *NOT_THE_EXPERIMENT, *LENGTH, *LABELS)
    return [HARDWARE_CHOICE] + [pattern for key in keys for pattern in (key, f"{key}.*")]
