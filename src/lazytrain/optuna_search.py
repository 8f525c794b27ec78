"""``hparams_search=optuna`` continued in place: the same command on the same sweep directory
goes on with the study stored there, to the number of trials it asks for.

Hydra's Optuna sweeper runs ``n_trials`` more trials each time it starts, and a trial whose
process was killed stays RUNNING in the study for ever. Here ``n_trials`` is the study's total: a
continued search first proposes again each trial a stopped command left running (the same values,
so the same run directory, which lazytrain resumes from its ``last.ckpt`` as any continued sweep's
job), then runs the trials that are left. The stopped attempt stays in the study, as failed."""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from lazytrain import sqlite_url
from lazytrain.compat import set_sweeper_trials

log = logging.getLogger(__name__)
STOPPED = "lazytrain.stopped_trials"  # a study attribute: the numbers of the stopped attempts


def is_optuna_search(config: DictConfig) -> bool:
    return str(config.hydra.sweeper.get("_target_", "")).endswith(".OptunaSweeper")


def prepare_study(config: DictConfig) -> None:
    """Before the sweeper starts: the study's database directory made (SQLite makes only the
    file), then the trials a stopped search left running queued again, and only what is left of
    ``hydra.sweeper.n_trials`` to run. A study not stored (or not there yet) is a new search."""
    import optuna

    sweeper = config.hydra.sweeper
    if not sweeper.get("storage"):
        return
    sqlite_url.make_directory(str(sweeper.storage))
    try:
        study = optuna.load_study(study_name=sweeper.study_name, storage=sweeper.storage)
    except KeyError:  # no study of that name yet: a new search
        return
    trials = study.get_trials(deepcopy=False)
    stopped = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    for trial in stopped:
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(trial.params)
    # the stopped attempts, failed above now or by an earlier continuation, are not trials of
    # their own: each is run again
    attempts = set(study.user_attrs.get(STOPPED, [])) | {t.number for t in stopped}
    study.set_user_attr(STOPPED, sorted(attempts))
    ended = len(trials) - len(attempts)
    left = max(0, sweeper.n_trials - ended)
    log.info(
        f"continuing the search in {sweeper.storage}: {ended} of {sweeper.n_trials} trials "
        f"ended, {len(stopped)} stopped (proposed again first), {left} to run"
    )
    set_sweeper_trials(config, left)
