"""register stage: the champion by validation accuracy, in MLflow's model registry.

Reads   metrics/train/<model>/seed<seed>.json (validation accuracy of each saved replicate: experiments,
        and the tuned configurations the confirm stage retrained), models/<model>/seed<seed>.keras,
        reports/tuning/<architecture>.json (a tuned model's maxlen), data/prepared/vocab.tsv and stats.json,
        params prepare.num_words, train (padding, truncating, experiments), tune.architectures
Writes  registered model imdb-sentiment in the MLflow store: a version per model it
        registers (a pyfunc that reads raw text, see pipeline/serving.py), alias
        ``champion`` and ``challenger``; reports/registry.json (what the aliases point to)
Run     python -m pipeline.register   (or: dvc repro register)

Selection looks at validation accuracy only, never at the test split. Every replicate of every
default experiment and of every confirmed tuned configuration (models/<model>/seed<seed>.keras) is a
candidate, scored by the validation accuracy of the saved model. The best of them is the model worth serving;
its number is optimistic (the maximum over seeds and configurations on the same validation split),
which the report names. It becomes the champion only if it beats the current champion's validation
accuracy, and only when the current champion was scored on the same prepared data (its
data.sha256 tag): a champion from other data (another prepare.limit, split seed or vocabulary) was
scored on another validation split, so its number is not comparable, and it may even have trained
on reviews that are validation reviews now. Such a champion loses its claim and is not compared.
The runner-up (the next best of this run's models and a comparable champion) becomes the
challenger. A model already registered (same file hash) is reused, not registered again. Each
version's tags name its source run, the data hash and its validation accuracy.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline import config
from pipeline.config import Params, experiment_settings, settings_of, vocabulary_size
from pipeline.data import load_stats
from pipeline.paths import (
    PREPARED_DIR,
    REGISTRY_REPORT,
    VOCABULARY,
    model_path,
    train_metrics_path,
    tuned_name,
    tuning_report_path,
    write_atomic,
)
from pipeline.stage import UserError, run

REGISTERED_MODEL = "imdb-sentiment"
CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass(frozen=True)
class Candidate:
    name: str  # experiment name, or <architecture>-tuned
    val_accuracy: float
    path: Path
    maxlen: int
    num_words: int  # its vocabulary cap: the served model maps words beyond it to 2, as in training


def candidates(params: Params) -> list[Candidate]:
    """Every saved replicate with a validation result (each seed of each experiment and of each confirmed tuned
    configuration), best first."""
    models = [(name, experiment_settings(experiment)) for name, experiment in params.train.experiments.items()]
    for architecture in params.tune.architectures:
        summary = tuning_report_path(architecture)
        if summary.is_file():
            best = json.loads(summary.read_text(encoding="utf-8"))["best_params"]
            models.append((tuned_name(architecture), settings_of(params, architecture, best)))
    found = []
    for name, settings in models:
        for seed in params.base.seeds:
            metrics, path = train_metrics_path(name, seed), model_path(name, seed)
            if metrics.is_file() and path.is_file():
                value = json.loads(metrics.read_text(encoding="utf-8"))["val/accuracy"]  # the saved (kept) epoch
                found.append(Candidate(f"{name}/seed{seed}", value, path, settings["maxlen"],
                                       vocabulary_size(params, settings)))
    return sorted(found, key=lambda c: -c.val_accuracy)


def comparable(current, data: str) -> bool:
    """Whether the current champion was scored on this prepared data (the same validation split)."""
    return current is not None and current.tags.get("data.sha256") == data


def rank(pool: list[dict]) -> tuple[dict, dict | None]:
    """(champion, challenger) from entries with "val_accuracy" and "sha256", distinct models.

    Ties keep the earlier entry, so a current champion listed first is not displaced by an equal model.
    """
    distinct: dict[str, dict] = {}
    for entry in pool:
        distinct.setdefault(entry["sha256"], entry)
    ordered = sorted(distinct.values(), key=lambda e: -e["val_accuracy"])
    return ordered[0], ordered[1] if len(ordered) > 1 else None


def main() -> None:
    import argparse

    argparse.ArgumentParser(description="Register the best model file by validation accuracy as "
                                        "imdb-sentiment@champion in the MLflow registry (the runner-up as "
                                        "@challenger); writes reports/registry.json.").parse_args()
    params = config.load()
    load_stats()
    found = candidates(params)
    if not found:
        raise UserError("no trained model with a validation result: run `dvc repro train` first")

    import mlflow

    from pipeline import provenance, tracking

    root = tracking.project_root(Path.cwd())
    tracking.start(root, os.environ.get("MLFLOW_TRACKING_URI"))
    client = mlflow.MlflowClient()
    data = provenance.data_hash(PREPARED_DIR)
    versions = client.search_model_versions(f"name='{REGISTERED_MODEL}'") if _exists(client) else []
    by_hash = {v.tags.get("model.sha256"): v for v in versions}
    current = _alias(client, CHAMPION)

    pool, stale = [], None
    if comparable(current, data):
        pool.append({"name": current.tags.get("model"), "val_accuracy": float(current.tags["val_accuracy"]),
                     "sha256": current.tags["model.sha256"], "version": current})
    elif current is not None:
        stale = {"version": int(current.version), "model": current.tags.get("model"),
                 "data.sha256": current.tags.get("data.sha256"), "val/accuracy": float(current.tags["val_accuracy"])}
        print(f"current champion {current.tags.get('model')} v{current.version} was scored on other data "
              f"(data.sha256 {str(stale['data.sha256'])[:12]}..., now {data[:12]}...): its validation accuracy is "
              "not comparable, so it is not compared and loses its alias", flush=True)
    for candidate in found:
        pool.append({"name": candidate.name, "val_accuracy": candidate.val_accuracy,
                     "sha256": provenance.file_sha256(candidate.path), "candidate": candidate})
    champion, challenger = rank(pool)
    print(f"best on validation: {found[0].name} ({found[0].val_accuracy:.4f}); current champion: "
          + (f"{current.tags.get('model')} v{current.version} ({float(current.tags['val_accuracy']):.4f})"
             if current and stale is None else "none comparable"), flush=True)

    chosen = {CHAMPION: _version_of(client, champion, by_hash, params, data)}
    if challenger is not None:
        chosen[CHALLENGER] = _version_of(client, challenger, by_hash, params, data)
    for alias, version in chosen.items():
        client.set_registered_model_alias(REGISTERED_MODEL, alias, version.version)
        print(f"{REGISTERED_MODEL}@{alias} = version {version.version} ({version.tags.get('model')}, "
              f"val/accuracy {float(version.tags['val_accuracy']):.4f})")
    report = {alias: {"version": int(v.version), "model": v.tags.get("model"),
                      "val/accuracy": float(v.tags["val_accuracy"]), "source_run": v.tags.get("source_run"),
                      "data.sha256": v.tags.get("data.sha256")} for alias, v in chosen.items()}
    if stale is not None:
        report["not_compared"] = stale | {"reason": "scored on other prepared data (data.sha256)"}
    write_atomic(REGISTRY_REPORT, tracking.dumps(report))


def _version_of(client, entry: dict, by_hash: dict, params: Params, data: str):
    """The registered version of a ranked entry: the champion's own, the version already holding this
    file (its score refreshed), or a new one."""
    if "version" in entry:
        return entry["version"]
    if entry["sha256"] in by_hash:  # already registered: keep its version, refresh its score
        version = by_hash[entry["sha256"]]
        client.set_model_version_tag(REGISTERED_MODEL, version.version, "val_accuracy", str(entry["val_accuracy"]))
        client.set_model_version_tag(REGISTERED_MODEL, version.version, "data.sha256", data)
        return client.get_model_version(REGISTERED_MODEL, version.version)
    return _register(client, entry["candidate"], entry["sha256"], params, data)


def _exists(client) -> bool:
    import mlflow

    try:
        client.get_registered_model(REGISTERED_MODEL)
        return True
    except mlflow.exceptions.MlflowException:
        return False


def _alias(client, alias: str):
    import mlflow

    try:
        return client.get_model_version_by_alias(REGISTERED_MODEL, alias)
    except mlflow.exceptions.MlflowException:
        return None


def _register(client, candidate: Candidate, sha256: str, params: Params, data: str):
    """Log the servable pyfunc for ``candidate`` in a run of its own and register it."""
    import mlflow

    from pipeline import provenance, serving, tracking

    sources = client.search_runs([mlflow.get_experiment_by_name(tracking.EXPERIMENT).experiment_id],
                                 f"tags.`model.sha256` = '{sha256}'", order_by=["attributes.start_time ASC"])
    source_run = sources[0].info.run_id if sources else "unknown"
    settings = {"maxlen": candidate.maxlen, "num_words": candidate.num_words,
                "padding": params.train.padding, "truncating": params.train.truncating}
    origin = provenance.run_tags(Path.cwd(), stage="register")
    tags = {"model": candidate.name, "val_accuracy": str(candidate.val_accuracy), "model.sha256": sha256,
            "source_run": source_run, "data.sha256": data, "git.commit": origin["git.commit"]}
    print(f"registering {candidate.name} (source run {source_run})", flush=True)
    with tracking.started_run(run_name=f"register-{candidate.name}", tags=origin | tags):
        mlflow.log_params(settings | {"model": candidate.name})
        uri = serving.log_servable(candidate.path, VOCABULARY, settings)
    registered = mlflow.register_model(uri, REGISTERED_MODEL, tags=tags)
    return client.get_model_version(REGISTERED_MODEL, registered.version)


if __name__ == "__main__":
    run(main, end_process=True)
