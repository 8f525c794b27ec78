"""``compare.py --where KEY=VALUE``: the runs of a project whose settings say so.

A run's settings are its saved configuration (``.hydra/config.yaml``, every key, dotted) and its
config-group choices (``model: lazy_cnn``, from ``.hydra/hydra.yaml``). VALUE is read as YAML,
as Hydra reads an override, so ``optimizer.lr=1e-3`` matches ``0.001``; a list setting (``tags``,
``model.hidden``) matches when it contains the value, or equals it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class WhereError(ValueError):
    """A ``--where`` that cannot select anything: not KEY=VALUE, or a key no run has."""


@dataclass(frozen=True)
class Where:
    key: str
    value: Any
    text: str  # as the user wrote it

    @classmethod
    def parse(cls, text: str) -> Where:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise WhereError(
                f"--where {text!r} is not KEY=VALUE: e.g. --where model=lazy_cnn, "
                "--where tags=baseline, --where optimizer.lr=0.001"
            )
        try:
            parsed = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            parsed = value
        if isinstance(parsed, str) and NUMBER.fullmatch(parsed):  # 1e-3: YAML 1.1 wants 1.0e-3
            parsed = float(parsed)
        return cls(key.strip(), parsed, text)

    def matches(self, settings: Mapping[str, Any]) -> bool:
        if self.key not in settings:
            return False
        setting = settings[self.key]
        if isinstance(setting, list) and not isinstance(self.value, list):
            return any(_equal(item, self.value) for item in setting)
        return _equal(setting, self.value)

    def __str__(self) -> str:
        return self.text


def _equal(setting: Any, value: Any) -> bool:
    """Equal as values (``0.001 == 1e-3``), or as written (``"3" == 3``, a tag that is a number)."""
    return setting == value or str(setting) == str(value)


def select(
    runs: Sequence[Any], wheres: Sequence[Where], settings: Mapping[str, Mapping[str, Any]]
) -> list[Any]:
    """The runs (by ``run.name``) whose ``settings`` match every ``where``. A key that no run has
    is a mistake (a typo selects nothing, silently): it is refused naming the key."""
    keys = {k for s in settings.values() for k in s}
    for where in wheres:
        if where.key not in keys:
            close = difflib.get_close_matches(where.key, keys, n=3)
            hint = (
                f"did you mean {' or '.join(close)}?"
                if close
                else "keys look like model, optimizer.lr, tags"
            )
            raise WhereError(f"--where {where}: no run has the setting {where.key!r}; {hint}")
    return [r for r in runs if all(w.matches(settings.get(r.name, {})) for w in wheres)]
