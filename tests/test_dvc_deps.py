"""dvc.yaml lists exactly the code each stage runs: walk the imports of its module and compare.

A stage whose deps miss a module it imports would not rerun when that module changes (a wrong
result DVC calls up to date); a listed module it never imports reruns it for nothing. Files a
module reads by name as code (model_code.py, logged as MLflow "models from code") count as imports.
"""

from __future__ import annotations

import ast
import re

import pytest
import yaml

from tests.conftest import ROOT

PACKAGE = ROOT / "pipeline"


def imported(module: str) -> set[str]:
    """The project modules `module` imports anywhere (top level or inside functions), or names as a file."""
    found = set()
    for node in ast.walk(ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "pipeline":  # modules; other names live in __init__
            found |= {alias.name for alias in node.names if (PACKAGE / f"{alias.name}.py").is_file()}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipeline."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("pipeline.")}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = re.fullmatch(r"(\w+)\.py", node.value)
            if match and (PACKAGE / node.value).is_file():
                found.add(match.group(1))
    return found - {module}


def closure(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(imported(name))
    return seen


def stages() -> dict[str, dict]:
    defined = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in defined.items()}


@pytest.mark.parametrize("name", list(stages()))
def test_every_stage_depends_on_exactly_the_code_it_runs(name: str):
    stage = stages()[name]
    module = re.fullmatch(r"python -m pipeline\.(\w+)( .*)?", stage["cmd"]).group(1)
    # The package's __init__ runs first in every stage: it picks the Keras backend, which changes results.
    runs = {f"pipeline/{m}.py" for m in closure(module)} | {"pipeline/__init__.py"}
    listed = {d for d in stage["deps"] if isinstance(d, str) and d.startswith("pipeline/")}
    assert sorted(runs - listed) == [], f"{name}: imported but not in deps"
    assert sorted(listed - runs) == [], f"{name}: in deps but never imported"


def test_the_walk_finds_imports_inside_functions_and_files_named_as_code():
    assert "serving" in imported("register")  # imported inside a function
    assert "model_code" in imported("serving")  # logged by file name
    assert {"config", "paths", "stage"} <= closure("report")
    assert "probes" in imported("evaluate") and "trim_heap" not in imported("evaluate")  # a function of __init__
