"""Security: the archive is read in place, never extracted; arrays load without pickles; models load
in Keras' safe mode. (Servers binding 127.0.0.1 is checked where each server is started: test_train,
test_tune, test_serving; credentials in storage URLs are checked in test_concurrency.)"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from pipeline.stage import UserError
from tests.conftest import ROOT, SMALL_ARCHIVE, run


def test_the_archive_is_never_extracted(project: Path, tmp_path: Path):
    code = "\n".join(p.read_text() for p in (ROOT / "pipeline").glob("*.py"))
    assert not re.search(r"\.extract(all)?\(|shutil\.unpack_archive", code)  # only extractfile(): in memory
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    run(["python", "-m", "pipeline.download"], project, IMDB_ARCHIVE=str(SMALL_ARCHIVE), TMPDIR=str(scratch))
    run(["python", "-m", "pipeline.prepare"], project, TMPDIR=str(scratch))
    written = [p for p in project.rglob("*") if ".git" not in p.parts and ".dvc" not in p.parts]
    assert not [p for p in written if "aclImdb" in p.parts or p.suffix == ".txt" and p.parent.name in ("pos", "neg")]
    assert not any(scratch.rglob("*"))  # nothing unpacked to a temporary folder either


def test_pickled_arrays_are_refused(tmp_path: Path):
    from pipeline.data import load_split

    split = tmp_path / "train"
    split.mkdir()
    for field in ("tokens", "offsets", "labels", "ratings"):
        np.save(split / f"{field}.npy", np.arange(3))
    # An object array is stored as a pickle, and unpickling can run any code.
    np.save(split / "tokens.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match=r"not plain numeric arrays .*Object arrays cannot be loaded"):
        load_split("train", tmp_path)


def test_models_load_in_safe_mode(tmp_path: Path):
    import keras

    from pipeline.models import load

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))  # a Lambda is arbitrary code
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(UserError, match=r"lambda.keras: not a model this project can load safely .*Lambda"):
        load(tmp_path / "lambda.keras")
    # Every Keras model the pipeline loads goes through safe mode.
    for path in (ROOT / "pipeline").glob("*.py"):
        for line in path.read_text().splitlines():
            if "keras.models.load_model(" in line:
                assert "safe_mode=True" in line, f"{path.name}: {line.strip()}"
