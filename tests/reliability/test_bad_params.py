"""The bad-input matrix for params.yaml: every key wrong in type, out of range and missing, and an
unknown key in every section. Each case must give one line naming the key, the value and what is
allowed; a sample of stages run as subprocesses must exit 2 and leave every file as it was."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
import re
from pathlib import Path

import pytest
import yaml

from pipeline import config
from pipeline.stage import UserError
from tests.conftest import ROOT, run

DEFAULTS = yaml.safe_load((ROOT / "params.yaml").read_text())
WRONG_TYPE = {int: "not-a-number", float: "not-a-number", str: 12345, bool: "yes", list: "dense"}
OUT_OF_RANGE_CANDIDATES = (-1, 0, -(2**40), 2**40, 1e-12, math.inf, "not valid!", [], ["x", "x"])


def leaves(cls: type, values: dict, prefix: str = ""):
    """(dotted key, rule) for every scalar key of ``values`` under dataclass ``cls``."""
    for spec in dataclasses.fields(cls):
        key, value = f"{prefix}{spec.name}", values.get(spec.name)  # an optional key may be left out
        if "rule" in spec.metadata:
            yield key, spec.metadata["rule"]
        elif "mapping" in spec.metadata:
            entry_cls = spec.metadata["mapping"][0]
            name = next(iter(value))  # one named entry stands for all: they share one parser
            yield from leaves(entry_cls, value[name], f"{key}.{name}.")
        else:
            yield from leaves(config._resolve(spec.type), value, f"{key}.")


def sections(cls: type, values: dict, prefix: str = ""):
    yield prefix.rstrip(".")
    for spec in dataclasses.fields(cls):
        if "rule" in spec.metadata:
            continue
        if "mapping" in spec.metadata:
            name = next(iter(values[spec.name]))
            yield from sections(spec.metadata["mapping"][0], values[spec.name][name], f"{prefix}{spec.name}.{name}.")
        else:
            yield from sections(config._resolve(spec.type), values[spec.name], f"{prefix}{spec.name}.")


def out_of_range(rule: config.Rule):
    for candidate in OUT_OF_RANGE_CANDIDATES:
        converted = config._convert(candidate, rule.kind)
        if converted is not None and not rule.ok(converted):
            return candidate
    return None  # e.g. booleans: every value of the right type is allowed


# The rules of optional keys (a default in the dataclass): leaving one out is allowed, not an error.
OPTIONAL = {id(spec.metadata["rule"]) for cls in vars(config).values() if dataclasses.is_dataclass(cls)
            for spec in dataclasses.fields(cls) if spec.default is not dataclasses.MISSING and "rule" in spec.metadata}


def cases():
    for key, rule in leaves(config.Params, DEFAULTS):
        yield pytest.param(key, WRONG_TYPE[rule.kind], f"{key} = {WRONG_TYPE[rule.kind]!r}: must be {rule.allowed}",
                           id=f"{key}-wrong-type")
        bad = out_of_range(rule)
        if bad is not None:
            yield pytest.param(key, bad, f"{key} = {bad!r}: must be {rule.allowed}", id=f"{key}-out-of-range")
        if id(rule) not in OPTIONAL:
            yield pytest.param(key, None, f"{key} is missing: must be {rule.allowed}", id=f"{key}-missing")
    for section in sections(config.Params, DEFAULTS):
        key = f"{section}.bogus" if section else "bogus"
        yield pytest.param(key, 1, f"{key} is not a known key", id=f"{key}-unknown")


def with_value(key: str, value) -> dict:
    """The default params with ``key`` set to ``value`` (None: removed; a new key: added)."""
    params = copy.deepcopy(DEFAULTS)
    *parents, last = key.split(".")
    node = params
    for part in parents:
        node = node[part]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return params


@pytest.mark.parametrize(("key", "value", "message"), list(cases()))
def test_every_key_wrong_out_of_range_missing_or_unknown_gives_one_clear_line(tmp_path, key, value, message):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(with_value(key, value)))
    with pytest.raises(UserError) as error:
        config.load(path)
    text = str(error.value)
    assert text == f"{path}: {message}" or text.startswith(f"{path}: {message}"), text
    assert "\n" not in text


def test_the_matrix_is_large_and_covers_every_key():
    ids = [case.id for case in cases()]
    assert len(ids) >= 80
    keys = {k for k, _ in leaves(config.Params, DEFAULTS)}
    assert keys >= {"base.seed", "tune.heartbeat", "train.experiments.dense.dropout", "tune.space.maxlen.log"}


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and ".git" not in p.parts):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize(("stage", "key", "value"), [
    (["python", "-m", "pipeline.download"], "download.retries", 99),
    (["python", "-m", "pipeline.prepare"], "prepare.val_fraction", 1.5),
    (["python", "-m", "pipeline.train", "--experiment", "lstm", "--seed", "1"], "train.batch_size", 0),
    (["python", "-m", "pipeline.tune", "--architecture", "lstm"], "tune.pruner", "random"),
    (["python", "-m", "pipeline.evaluate"], "train.padding", "middle"),
    (["python", "-m", "pipeline.register"], "base.seed", -5),
    (["python", "-m", "pipeline.report"], "tune.architectures", []),
])
def test_every_stage_stops_with_exit_2_and_touches_nothing(project: Path, stage, key, value):
    (project / "params.yaml").write_text(yaml.safe_dump(with_value(key, value)))
    before = tree_digest(project)
    result = run(stage, project, check=False)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: params.yaml: {key} = "), result.stderr
    assert tree_digest(project) == before


# The documented ranges (docs/configuration.md), written out by hand rather than read from the rules under
# test: (largest value refused below, smallest accepted, largest accepted, smallest refused above); None
# where the key has no bound on that side. A rule that drifts from the documentation fails here.
DOCUMENTED = {
    "base.seed": (-1, 0, 2**32 - 1, 2**32),
    "download.timeout": (0, 1e-6, 3600, 3600.5),
    "download.retries": (-1, 0, 20, 21),
    "prepare.num_words": (3, 4, 1_000_000, 1_000_001),
    "prepare.val_fraction": (0, 1e-6, 0.999999, 1),
    "prepare.limit": (-1, 0, None, None),
    "train.batch_size": (0, 1, 65_536, 65_537),
    "train.learning_rate": (0, 1e-9, 10, 10.5),
    "train.patience": (-1, 0, 1000, 1001),
    "train.experiments.lstm.maxlen": (0, 1, None, None),  # above: the longest prepared review, checked by train
    "train.experiments.lstm.units": (0, 1, 4096, 4097),
    "train.experiments.lstm.embedding_dim": (0, 1, 4096, 4097),
    "train.experiments.lstm.dropout": (-1e-6, 0, 0.999999, 1),
    "train.experiments.lstm.epochs": (0, 1, 1000, 1001),
    "train.experiments.lstm.num_words": (3, 4, 1_000_000, 1_000_001),  # optional: prepare.num_words when left out
    "tune.n_trials": (0, 1, 10_000, 10_001),
    "tune.timeout": (-1, 0, 604_800, 604_801),
    "tune.warmup_epochs": (-1, 0, 1000, 1001),
    "tune.startup_trials": (-1, 0, 10_000, 10_001),
    "tune.heartbeat": (0, 1, 3600, 3601),
    "evaluate.probe_reviews": (0, 1, 25_000, 25_001),
    "evaluate.memory_content": (0, 1, 100_000, 100_001),  # evaluate checks it against each maxlen too
    "speed.rounds": (1, 2, 100, 101),
    "speed.reviews": (0, 1, 1_000_000, 1_000_001),
}


@pytest.mark.parametrize("key", sorted(DOCUMENTED))
def test_every_numeric_range_is_the_documented_one(tmp_path, key):
    refused_low, lowest, highest, refused_high = DOCUMENTED[key]
    path = tmp_path / "params.yaml"
    for value in (lowest, highest):
        if value is not None:
            path.write_text(yaml.safe_dump(with_value(key, value)))
            config.load(path)  # accepted
    for value in (refused_low, refused_high):
        if value is not None:
            path.write_text(yaml.safe_dump(with_value(key, value)))
            with pytest.raises(UserError, match=f"{key} = "):
                config.load(path)


def test_every_key_is_documented_in_the_configuration_reference():
    table = (ROOT / "docs/configuration.md").read_text()
    for key, _ in leaves(config.Params, DEFAULTS):
        generic = key.replace(".lstm.", ".<name>.").replace(".dense.", ".<name>.")
        if generic.startswith("tune.space."):
            generic = "tune.space.<name>"
        assert f"`{generic}`" in table, f"{key} is not in docs/configuration.md"
    numeric = {re.sub(r"\.experiments\.[^.]+\.", ".experiments.lstm.", k) for k, rule in leaves(config.Params, DEFAULTS)
               if rule.kind in (int, float) and not k.startswith("tune.space.")}
    assert numeric <= set(DOCUMENTED), f"numeric keys without a hand-written range: {numeric - set(DOCUMENTED)}"
