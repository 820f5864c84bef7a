"""Benchmark: prediction latency and throughput of the servable model, in process and over HTTP.

Needs a registered champion (`dvc repro register`, or `python -m pipeline.register`) in the
project's MLflow store. Its Keras file, vocabulary and settings are logged again, with this
checkout's code, into a temporary store (a registered version runs the code it was logged with),
and that servable is measured. In one run it measures, side by side:
- the Keras model alone on already-encoded arrays through `model.predict()` (the reference: no text
  handling; this was the servable's path until it moved to `predict_on_batch`),
- the same arrays through `model.predict_on_batch()` (the servable's path now),
- the pyfunc on raw text (tokenise, encode, pad, predict),
- `mlflow models serve` on 127.0.0.1 answering POST /invocations with raw text,
each for single reviews (latency p50/p99 over SINGLE calls) and for one batch of BATCH
reviews (reviews per second, median of 3). Reviews are real validation reviews, read
from the archive in data/raw.

    .venv/bin/python bench/serving.py
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import mlflow  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.archive import read_reviews  # noqa: E402

SINGLE = 200
BATCH = 1000


def percentiles(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1000
    return f"p50 {np.percentile(ms, 50):7.1f} ms  p99 {np.percentile(ms, 99):7.1f} ms"


def rate(call, payload) -> float:
    times = []
    for _ in range(3):
        started = time.perf_counter()
        call(payload)
        times.append(time.perf_counter() - started)
    return BATCH / statistics.median(times)


def relog_champion(folder: Path) -> tuple[str, str, str]:
    """The champion's Keras file, vocabulary and settings logged again as a servable, with this checkout's
    pipeline code, into a store of its own in ``folder``: a registered version carries the code it was
    logged with, and the benchmark measures the code here. Returns (model URI, tracking URI, its name)."""
    import yaml

    from pipeline.serving import log_servable

    version = mlflow.MlflowClient().get_model_version_by_alias("imdb-sentiment", "champion")
    local = Path(mlflow.artifacts.download_artifacts(version.source, dst_path=str(folder / "champion")))
    artifacts = yaml.safe_load((local / "MLmodel").read_text())["flavors"]["python_function"]["artifacts"]
    path = {name: local / entry["path"] for name, entry in artifacts.items()}
    store = f"sqlite:///{folder / 'bench.db'}"
    mlflow.set_tracking_uri(store)
    mlflow.set_experiment("serving-bench")
    with mlflow.start_run():
        uri = log_servable(path["keras_model"], path["vocabulary"], json.loads(path["settings"].read_text()))
    return uri, store, f"{version.tags['model']} (version {version.version})"


def main() -> None:
    os.chdir(ROOT)
    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{ROOT / 'mlflow.db'}")
    texts = [r.text for r in read_reviews(ROOT / "data/raw/aclImdb_v1.tar.gz", limit=BATCH // 2 + SINGLE)
             if r.split == "test"][: BATCH + SINGLE]
    folder = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    try:
        measure(texts, *relog_champion(folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure(texts: list[str], uri: str, store: str, champion: str) -> None:
    pyfunc = mlflow.pyfunc.load_model(uri)
    inner = pyfunc.unwrap_python_model()
    encoded = inner.encode(texts)
    print(f"champion: {champion}, served by this checkout's code; {len(texts)} test reviews")

    rows = []
    keras_single = []
    for row in encoded[:SINGLE]:
        started = time.perf_counter()
        inner.model.predict(row[None, :], verbose=0)
        keras_single.append(time.perf_counter() - started)
    rows.append(("Keras predict() on encoded arrays (ref)", keras_single,
                 rate(lambda x: inner.model.predict(x, batch_size=256, verbose=0), encoded[:BATCH])))
    direct_single = []
    for row in encoded[:SINGLE]:
        started = time.perf_counter()
        inner.model.predict_on_batch(row[None, :])
        direct_single.append(time.perf_counter() - started)
    rows.append(("Keras predict_on_batch() on arrays", direct_single,
                 rate(lambda x: [inner.model.predict_on_batch(x[i:i + 256]) for i in range(0, len(x), 256)],
                      encoded[:BATCH])))
    pyfunc_single = []
    for text in texts[:SINGLE]:
        started = time.perf_counter()
        pyfunc.predict([text])
        pyfunc_single.append(time.perf_counter() - started)
    rows.append(("pyfunc on raw text", pyfunc_single, rate(pyfunc.predict, texts[:BATCH])))

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).with_name("mlflow")), "models", "serve", "-m", uri,
                               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                              env=os.environ | {"MLFLOW_TRACKING_URI": store,
                                                # the server starts its workers from this environment's bin
                                                "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            sys.exit("mlflow models serve did not answer within 120 s")

        def post(batch):
            body = json.dumps({"inputs": batch}).encode()
            request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=300) as response:
                return json.load(response)

        post(texts[:2])
        served_single = []
        for text in texts[:SINGLE]:
            started = time.perf_counter()
            post([text])
            served_single.append(time.perf_counter() - started)
        rows.append(("mlflow models serve, HTTP", served_single, rate(post, texts[:BATCH])))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)

    reference = statistics.median(keras_single)
    print(f"\n{'':38}{'single review':>34}  {'x ref p50':>9}  {'batch of ' + str(BATCH):>16}")
    for name, single, per_second in rows:
        print(f"{name:38}{percentiles(single):>34}  {statistics.median(single) / reference:9.2f}  "
              f"{per_second:>10,.0f} rev/s")


if __name__ == "__main__":
    main()
