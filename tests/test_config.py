"""params.yaml validation: one clear line per kind of mistake, exit code 2, nothing written."""

from pathlib import Path

import pytest
import yaml

from pipeline import config
from pipeline.stage import UserError
from tests.conftest import ROOT, run, set_params


def write(tmp_path: Path, change) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    change(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_project_params_load_with_the_tutorial_defaults():
    params = config.load(ROOT / "params.yaml")
    assert params.prepare.num_words == 10000
    assert params.prepare.val_fraction == 0.2
    assert params.download.sha256.startswith("c40f74a1")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p["prepare"].update(val_fraction=1.5),
         "params.yaml: prepare.val_fraction = 1.5: must be a number > 0 and < 1"),
        (lambda p: p["prepare"].update(limit="ten"), "prepare.limit = 'ten': must be an integer >= 0"),
        (lambda p: p["prepare"].update(num_words=True), "prepare.num_words = True: must be an integer >= 4"),
        (lambda p: p["prepare"].update(num_words=2.5), "prepare.num_words = 2.5: must be an integer"),
        (lambda p: p["prepare"].pop("limit"), "prepare.limit is missing: must be an integer >= 0"),
        (lambda p: p["prepare"].update(vocab=5),
         "prepare.vocab is not a known key; allowed keys here: num_words, val_fraction, limit"),
        (lambda p: p.update(extra={}), "extra is not a known key"),
        (lambda p: p.pop("download"), "download is missing: must be a section"),
        (lambda p: p.update(base=[1]), "base must be a mapping"),
        (lambda p: p["download"].update(url="ftp://x/y"), "download.url = 'ftp://x/y': must be an http"),
        (lambda p: p["download"].update(sha256="abc"), "download.sha256 = 'abc': must be 64 lower-case"),
        (lambda p: p["download"].update(timeout=float("nan")), "download.timeout = nan: must be a number > 0"),
        (lambda p: p["base"].update(seed=-1), "base.seed = -1: must be an integer >= 0 and <= 4294967295"),
        (lambda p: p["train"]["experiments"]["lstm"].update(pooling="sum"),
         "train.experiments.lstm.pooling = 'sum': must be one of last, max, mean"),
        (lambda p: p["train"]["experiments"]["gru"].update(masking="yes"),
         "train.experiments.gru.masking = 'yes': must be true or false"),
        (lambda p: p["tune"]["space"].update(pooling={"choices": []}),
         "tune.space.pooling.choices = []: must be a non-empty list of distinct values"),
        (lambda p: p["tune"]["space"].update(units={"low": 4, "high": 8, "log": False, "step": 2}),
         "tune.space.units.step is not a known key; allowed keys here: low, high, log, choices"),
    ],
)
def test_each_kind_of_mistake_names_key_value_and_what_is_allowed(tmp_path, change, message):
    with pytest.raises(UserError) as raised:
        config.load(write(tmp_path, change))
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_optional_experiment_settings_default_to_the_tutorials_model_and_are_recorded_only_when_set(tmp_path):
    params = config.load(ROOT / "params.yaml")
    lstm = params.train.experiments["lstm"]
    assert (lstm.bidirectional, lstm.pooling, lstm.masking) == (False, "last", False)
    # Left out of the recorded settings at their defaults: results from before they existed stay valid.
    assert set(config.settings_of(params, "lstm")) == {"architecture", "maxlen", "units", "embedding_dim", "dropout",
                                                       "epochs", "learning_rate"}
    changed = config.load(write(tmp_path, lambda p: p["train"]["experiments"]["lstm"].update(
        bidirectional=True, pooling="max")))
    assert config.settings_of(changed, "lstm") | {} == config.settings_of(params, "lstm") | {
        "bidirectional": True, "pooling": "max"}
    assert config.settings_of(changed, "lstm", {"pooling": "mean"})["pooling"] == "mean"  # a study's best wins


def test_numeric_strings_are_accepted_for_floats_only(tmp_path):
    # PyYAML reads 1e-1 (no dot) as a string; users write it that way.
    path = write(tmp_path, lambda p: p["prepare"].update(val_fraction="1e-1"))
    assert config.load(path).prepare.val_fraction == pytest.approx(0.1)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        config.load(tmp_path / "params.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("prepare: [1, 2\n")
    with pytest.raises(UserError, match="not valid YAML at line"):
        config.load(broken)


def test_stage_stops_with_exit_2_and_one_line_before_writing(project):
    set_params(project, **{"prepare.val_fraction": 1.5})
    result = run(["python", "-m", "pipeline.prepare"], project, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: params.yaml: prepare.val_fraction = 1.5: must be a number > 0 and < 1"
    ]
    assert not (project / "data" / "prepared").exists()


# Frees 64 blocks of 1 MiB below a live one, after a 16 MiB block was freed (which raises glibc's dynamic
# mmap threshold to 16 MiB, so the 1 MiB blocks come from the heap); prints the MiB still resident.
HEAP_CHURN = """
import ctypes, os, sys
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
big = libc.malloc(16 << 20); ctypes.memset(big, 1, 16 << 20); libc.free(big)
before = rss()
blocks = [libc.malloc(1 << 20) for _ in range(64)]
for block in blocks:
    ctypes.memset(block, 1, 1 << 20)
pin = libc.malloc(256 << 10)  # from the top of the heap, above the blocks
for block in blocks:
    libc.free(block)
if sys.argv[1] == "trimmed":
    import pipeline
    pipeline.trim_heap()
print((rss() - before) >> 20)
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux's /proc")
def test_trim_heap_returns_freed_large_blocks_to_the_system():
    """Untrimmed, the churn keeps its 64 MiB resident; after pipeline.trim_heap, almost nothing."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}

    def kept(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", HEAP_CHURN, mode], cwd=ROOT, env=env, text=True,
                              capture_output=True, check=True)
        return int(done.stdout.split()[-1])

    assert kept("plain") >= 48  # glibc's dynamic threshold: the freed heap blocks stay resident
    assert kept("trimmed") <= 8
