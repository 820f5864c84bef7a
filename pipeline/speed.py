"""speed stage: seconds per training epoch of each architecture, measured side by side (claim 4).

Reads   data/prepared/ (the train split), params base.seed, base.deterministic, prepare.num_words,
        train.* shared keys, train.experiments (the default experiment of each architecture), speed.*
Writes  reports/speed.json: per architecture the seconds of each timed epoch, in rounds
Run     python -m pipeline.speed   (or: dvc repro speed)

Stage wall times cannot settle "GRU trains faster than LSTM": they run minutes apart on a machine
whose speed drifts by 10-20%. Here one process builds each architecture's default model (the
experiment named after the architecture) and trains them one epoch at a time in turns, on the same
``speed.reviews`` training reviews and the same threads: dense, simplernn, lstm, gru, then the reverse
order, and so on, so that a drift hits every model alike. Round 0 traces the graphs and is not timed.
The ratio of two models in one round is a paired measurement; the claims use those ratios.
"""

from __future__ import annotations

import os
import time

from pipeline import config
from pipeline.config import vocabulary_size
from pipeline.data import load_stats
from pipeline.paths import SPEED, write_atomic
from pipeline.stage import UserError, run


def timed_models(params: config.Params) -> dict[str, config.ExperimentParams]:
    """Each architecture's default experiment: the entry of train.experiments named after its architecture."""
    chosen = {name: e for name, e in params.train.experiments.items() if name == e.architecture}
    if not chosen:
        raise UserError("params.yaml: train.experiments has no experiment named after its architecture "
                        "(e.g. lstm: {architecture: lstm, ...}); the speed stage times those")
    return chosen


def threads() -> dict:
    """The thread settings the timed epochs ran with (TensorFlow's pools; JAX's XLA uses every core)."""
    import keras

    found = {"cores_available": len(os.sched_getaffinity(0))}
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        found |= {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                  "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}
    return found


def main() -> None:
    import argparse

    argparse.ArgumentParser(description="Time one epoch of each architecture's default model, in turns, "
                                        "in one process (params.yaml speed.*).").parse_args()
    params = config.load()
    load_stats()
    experiments = timed_models(params)

    import keras
    import numpy as np

    from pipeline import provenance, tracking
    from pipeline.data import load_split, pad
    from pipeline.models import build
    from pipeline.training import seed_everything

    seed_everything(params.base.seed, params.base.deterministic)
    train = load_split("train")
    rows = np.arange(min(params.speed.reviews, len(train)))
    subset = train.take(rows)
    y = subset.labels.astype(np.int32)
    models, inputs = {}, {}
    for name, e in experiments.items():
        num_words = vocabulary_size(params, vars(e))
        models[name] = build(e.architecture, optimizer=params.train.optimizer,
                             learning_rate=params.train.learning_rate, num_words=num_words,
                             maxlen=e.maxlen, embedding_dim=e.embedding_dim, units=e.units, dropout=e.dropout)
        inputs[name] = pad(subset.capped(num_words), e.maxlen, params.train.padding, params.train.truncating)

    seconds: dict[str, list[float]] = {name: [] for name in models}
    order = list(models)
    rounds = params.speed.rounds
    print(f"speed: {', '.join(order)}, one epoch each on {len(rows):,} reviews, {rounds} timed rounds after a "
          "warm-up, in one process", flush=True)
    for round_number in range(rounds + 1):
        for name in order if round_number % 2 == 0 else reversed(order):
            started = time.perf_counter()
            models[name].fit(inputs[name], y, epochs=1, batch_size=params.train.batch_size, shuffle=True, verbose=0)
            if round_number > 0:  # round 0 traces every graph
                seconds[name].append(round(time.perf_counter() - started, 4))
        if round_number > 0:
            print(f"round {round_number}/{rounds}: " + ", ".join(f"{n} {seconds[n][-1]:.2f} s" for n in order),
                  flush=True)
        else:
            print("warm-up round done", flush=True)

    result = {
        "models": order, "rounds": rounds, "reviews": len(rows), "batch_size": params.train.batch_size,
        "maxlen": {name: experiments[name].maxlen for name in order}, "seconds": seconds,
        "median": {name: float(np.median(values)) for name, values in seconds.items()},
        "threads": threads(), "backend": keras.backend.backend(),
        "deterministic": params.base.deterministic,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": provenance.machine(),
    }
    write_atomic(SPEED, tracking.dumps(result))
    print(f"wrote {SPEED}: median s/epoch " + ", ".join(f"{n} {result['median'][n]:.2f}" for n in order))


if __name__ == "__main__":
    run(main, end_process=True)
