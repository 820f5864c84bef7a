"""Typed, validated view of ``params.yaml``.

Every stage calls :func:`load` once in its ``main()``. The YAML is turned into
frozen dataclasses; an unknown key, a missing key, a wrong type or an
out-of-range value raises :class:`pipeline.stage.UserError` with one line that
names the key, the bad value and what is allowed, e.g.::

    params.yaml: prepare.val_fraction = 1.5: must be a number > 0 and < 1

Each field carries its rule in ``metadata["rule"]`` (made by ``pipeline.rules``); adding a knob
is one field here plus one commented line in ``params.yaml``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from pipeline.rules import (
    Rule,
    choice,
    flag,
    integer,
    integers,
    mapping,
    names,
    number,
    optional_number,
    scalars,
    text,
)
from pipeline.stage import UserError

PARAMS_FILE = Path("params.yaml")


@dataclass(frozen=True)
class BaseParams:
    seed: int = integer(0, 2**32 - 1)
    # Replicates: every default experiment is trained once per seed (DVC stage train@<experiment>-<seed>).
    seeds: tuple[int, ...] = integers(0, 2**32 - 1, "a non-empty list of distinct integers 0..2**32-1, e.g. [1, 2, 3]")
    deterministic: bool = flag()


@dataclass(frozen=True)
class DownloadParams:
    url: str = text(r"https?://[^\s/]+/\S*", "an http:// or https:// URL")
    sha256: str = text(r"[0-9a-f]{64}", "64 lower-case hexadecimal characters")
    timeout: float = number(above=0, at_most=3600)
    retries: int = integer(0, 20)


@dataclass(frozen=True)
class PrepareParams:
    num_words: int = integer(4, 1_000_000)
    val_fraction: float = number(above=0, below=1)
    limit: int = integer(0)


@dataclass(frozen=True)
class ExperimentParams:
    # The architecture name is checked against pipeline.architectures.NAMES by the
    # train and tune stages.
    architecture: str = text(r"[a-z][a-z0-9_]*", "an architecture name such as lstm")
    maxlen: int = integer(1, 100_000)
    units: int = integer(1, 4096)
    embedding_dim: int = integer(1, 4096)
    dropout: float = number(at_least=0, below=1)
    epochs: int = integer(1, 1000)
    # Optional (the tutorial's models when left out); recurrent architectures only:
    bidirectional: bool = flag(default=False)  # the recurrent layer reads the review both ways
    pooling: str = choice("last", "max", "mean", default="last")  # last state, or max/mean over time steps
    masking: bool = flag(default=False)  # the recurrent layer skips padding steps (Embedding mask_zero)
    # Any architecture: the vocabulary cap, applied when the prepared data is loaded; left out (0 here),
    # prepare.num_words. The prepared store keeps every training word's index, so no run re-tokenises.
    num_words: int = integer(4, 1_000_000, default=0)


# The optional experiment settings and their defaults: a setting at its default is left out of the
# settings a run records (so results and study names from before these settings existed stay valid).
OPTIONAL_SETTINGS = {f.name: f.default for f in dataclasses.fields(ExperimentParams)
                     if f.default is not dataclasses.MISSING}


def vocabulary_size(params: Params, settings: Mapping) -> int:
    """The ``num_words`` a run's model has: its own (an experiment's or a trial's), else prepare.num_words."""
    return settings.get("num_words") or params.prepare.num_words


def experiment_settings(experiment: ExperimentParams) -> dict:
    """An experiment's settings, without optional ones at their default."""
    return {k: v for k, v in vars(experiment).items() if k not in OPTIONAL_SETTINGS or v != OPTIONAL_SETTINGS[k]}


@dataclass(frozen=True)
class TrainParams:
    batch_size: int = integer(1, 65536)
    optimizer: str = choice("rmsprop", "adam", "sgd")
    learning_rate: float = number(above=0, at_most=10)
    padding: str = choice("pre", "post")
    truncating: str = choice("pre", "post")
    bucketing: bool = flag()
    keep: str = choice("best", "last")
    patience: int = integer(0, 1000)  # with keep: best, stop after this many epochs without a better one; 0 = never
    experiments: Mapping[str, ExperimentParams] = mapping(
        ExperimentParams, r"[A-Za-z0-9_-]{1,64}", "letters, digits, _ and -, at most 64 characters"
    )


@dataclass(frozen=True)
class SpaceParams:
    """One searched setting: a range (low, high, log) for a number, or a list of choices."""

    low: float | None = optional_number()
    high: float | None = optional_number()
    log: bool = flag(default=False)
    choices: tuple = scalars("a non-empty list of distinct values, e.g. [last, max, mean]")

    def described(self) -> dict:
        """What the entry says: its choices, or its range (the form study names have always hashed)."""
        return {"choices": list(self.choices)} if self.choices else {"low": self.low, "high": self.high,
                                                                      "log": self.log}


# What a study may search over; the other settings come from the architecture's
# default experiment (train.experiments.<architecture>) and train.*.
TUNABLE = ("maxlen", "units", "epochs", "embedding_dim", "learning_rate", "dropout", "batch_size", "bidirectional",
           "pooling", "masking", "num_words")
INTEGER_TUNABLE = frozenset({"maxlen", "units", "epochs", "embedding_dim", "batch_size", "num_words"})
CATEGORICAL_TUNABLE = frozenset({"bidirectional", "pooling", "masking"})  # searched over choices, not a range


def tunable_rule(name: str) -> Rule:
    """The range a tunable setting has in params.yaml (train.experiments.* or train.learning_rate): a
    search range must stay inside it."""
    for cls in (ExperimentParams, TrainParams):
        for spec in dataclasses.fields(cls):
            if spec.name == name:
                return spec.metadata["rule"]
    raise KeyError(name)


def settings_of(params: Params, architecture: str, best_params: dict | None = None) -> dict:
    """Every setting a model of ``architecture`` trains with: its default experiment
    (train.experiments.<architecture>, optional settings at their default left out), the learning rate,
    and a study's best values over them."""
    return experiment_settings(params.train.experiments[architecture]) \
        | {"learning_rate": params.train.learning_rate} | (best_params or {})


@dataclass(frozen=True)
class TuneParams:
    architectures: tuple[str, ...] = names(
        r"[a-z][a-z0-9_]*", "a non-empty list of distinct architecture names, e.g. [dense, lstm]"
    )
    n_trials: int = integer(1, 10000)
    timeout: int = integer(0, 7 * 24 * 3600)
    pruner: str = choice("median", "hyperband", "none")
    startup_trials: int = integer(0, 10000)  # TPE samples at random until this many trials have finished
    warmup_epochs: int = integer(0, 1000)
    heartbeat: int = integer(1, 3600)
    space: Mapping[str, SpaceParams] = mapping(SpaceParams, "|".join(TUNABLE), "one of " + ", ".join(TUNABLE))


@dataclass(frozen=True)
class EvaluateParams:
    probe_reviews: int = integer(1, 25_000)
    memory_distances: tuple[int, ...] = integers(
        0, 100_000, "a non-empty list of distinct integers >= 0, e.g. [0, 25, 50, 100, 150]")
    memory_content: int = integer(1, 100_000)


@dataclass(frozen=True)
class SpeedParams:
    rounds: int = integer(2, 100)
    reviews: int = integer(1, 1_000_000)


@dataclass(frozen=True)
class Params:
    base: BaseParams
    download: DownloadParams
    prepare: PrepareParams
    train: TrainParams
    tune: TuneParams
    evaluate: EvaluateParams
    speed: SpeedParams


def load(path: Path = PARAMS_FILE) -> Params:
    """Read and validate the whole parameter file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: not found; run from the project root, where params.yaml lives") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}: not valid YAML{where}: {getattr(error, 'problem', error)}") from None
    return parse(raw, Params, str(path))


def parse(data: Any, cls: type, source: str, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``data`` or raise one readable UserError."""
    where = prefix.rstrip(".") or "the top level"
    if not isinstance(data, dict):
        raise UserError(f"{source}: {where} must be a mapping of keys to values, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise UserError(
                f"{source}: {prefix}{key} is not a known key; allowed keys here: {', '.join(fields)}"
            )
    values = {}
    for name, spec in fields.items():
        key = f"{prefix}{name}"
        if name not in data and spec.default is not dataclasses.MISSING:
            values[name] = spec.default  # optional: params.yaml may leave it out
            continue
        if name not in data:
            described = spec.metadata["rule"].allowed if "rule" in spec.metadata else "a section"
            if "mapping" in spec.metadata:
                described = "a section of named entries"
            raise UserError(f"{source}: {key} is missing: must be {described}")
        values[name] = _value(data[name], spec, source, key)
    return cls(**values)


def _value(value: Any, spec: dataclasses.Field, source: str, key: str) -> Any:
    if "mapping" in spec.metadata:
        return _mapping(value, *spec.metadata["mapping"], source, key)
    if "rule" not in spec.metadata:  # a nested section
        return parse(value, _resolve(spec.type), source, key + ".")
    rule: Rule = spec.metadata["rule"]
    converted = _convert(value, rule.kind)
    if converted is None or not rule.ok(converted):
        raise UserError(f"{source}: {key} = {value!r}: must be {rule.allowed}")
    return converted


def _mapping(value: Any, of: type, key_pattern: re.Pattern, key_allowed: str, source: str, key: str) -> dict:
    if not isinstance(value, dict) or not value:
        raise UserError(f"{source}: {key} must map at least one name to its settings, got {value!r}")
    entries = {}
    for name, settings in value.items():
        if not isinstance(name, str) or not key_pattern.fullmatch(name):
            raise UserError(f"{source}: {key}.{name} is not a usable name: use {key_allowed}")
        entries[name] = parse(settings, of, source, f"{key}.{name}.")
    return MappingProxyType(entries)  # read-only, like the frozen dataclasses


def _convert(value: Any, kind: type) -> Any:
    """Return ``value`` as ``kind``, or None when it is of another type."""
    if isinstance(value, bool):  # bool is an int subclass: never let True pass as 1
        return value if kind is bool else None
    if kind is float:
        if isinstance(value, int | float):
            return float(value)
        # PyYAML reads "1e-3" (no dot) as a string; accept numeric strings for floats only.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return None
        return None
    if kind is list:
        return tuple(value) if isinstance(value, list) else None
    return value if isinstance(value, kind) else None


def _resolve(annotation: Any) -> type:
    return globals()[annotation] if isinstance(annotation, str) else annotation
