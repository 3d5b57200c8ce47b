"""The notebooks: jupytext percent text only, and each runs top to bottom on a small world.

The slow tests build one small world (data → features → train → score twice → plan), point each
notebook's parameters cell at it, execute it in a fresh kernel and check that what it shows is
the pipeline's own figures: a probe cell appended to the notebook prints the values to compare.
"""

from __future__ import annotations

import ast
import json
import os
from datetime import date
from pathlib import Path
from typing import Any

import jupytext
import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from pipeline import stages
from pipeline.config import load_params
from pipeline.io import catalog
from pipeline.lab import oracle
from tests.pipeline.test_train import small

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
EARLIER, LATEST = date(2026, 8, 1), date(2026, 10, 1)
CELL_TIMEOUT_S = 600  # generous: the machine is shared and has 2 cores
KERNEL_STARTUP_S = 120


def notebook_paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.py"))


def parameters_cell(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged parameters"
    return tagged[0]


def assigned_names(source: str) -> set[str]:
    names = set()
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def test_notebooks_are_jupytext_percent_text_only():
    # given the notebooks folder
    paths = notebook_paths()
    # then it holds percent-format text notebooks and no .ipynb
    assert paths, f"no notebooks in {NOTEBOOKS}"
    assert not list(NOTEBOOKS.glob("*.ipynb")), "notebooks are kept as jupytext text, not .ipynb"
    for path in paths:
        notebook = jupytext.read(path)
        representation = notebook.metadata.get("jupytext", {}).get("text_representation", {})
        assert representation.get("format_name") == "percent", f"{path.name}: no percent header"
        assert notebook.metadata["kernelspec"]["name"] == "python3"
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert code and code[0] is parameters_cell(notebook), f"{path.name}: parameters first"
        assert {"PARAMS", "OVERRIDES"} <= assigned_names(code[0].source)
        assert any(c.cell_type == "markdown" for c in notebook.cells)
        # saved from Jupyter (through jupytext) it comes back as it is: no diff from a save
        assert canonical(jupytext.writes(notebook, fmt="py:percent")) == canonical(
            path.read_text()
        ), f"{path.name}: not in jupytext's canonical percent form"


def canonical(text: str) -> str:
    """The text without the header's jupytext version (a newer jupytext rewrites only that)."""
    return "\n".join(line for line in text.splitlines() if "jupytext_version:" not in line)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("notebooks")
    overrides = small(tmp)
    params = load_params(ROOT / "params.yaml", overrides)
    stages.run_data(params, quiet=True)
    stages.run_features(params, quiet=True)
    trained = stages.run_train(params, judge=oracle.judge(params))
    for day in (EARLIER, LATEST):  # the earlier run first: the latest has history and changes
        stages.run_score(params, day)
    stages.run_plan(params, LATEST)
    return params, overrides, trained


def execute(name: str, probe: str, **parameters: Any) -> tuple[nbformat.NotebookNode, dict]:
    """Run a notebook with its parameters replaced; returns it and what the probe cell printed."""
    notebook = jupytext.read(NOTEBOOKS / name)
    cell = parameters_cell(notebook)
    assert assigned_names(cell.source) == set(parameters), "the test sets every parameter"
    cell.source = "\n".join(f"{key} = {value!r}" for key, value in parameters.items())
    notebook.cells.append(
        nbformat.v4.new_code_cell(f"import json\nprint(json.dumps({probe}, default=str))")
    )
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        startup_timeout=KERNEL_STARTUP_S,
        resources={"metadata": {"path": str(ROOT)}},
    )
    # nbclient raises CellExecutionError (with the cell and its traceback) on the first error
    client.execute(cwd=str(ROOT), env=env | {"MPLBACKEND": "Agg"})
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors
    printed = "".join(o.text for o in notebook.cells[-1].outputs if o.get("name") == "stdout")
    return notebook, json.loads(printed)


def shown_text(notebook: nbformat.NotebookNode) -> str:
    """Everything the notebook printed or displayed as text (the probe cell excluded)."""
    parts = []
    for cell in notebook.cells[:-1]:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", "") or output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.slow
def test_the_world_notebook_shows_the_raw_tables_and_the_training_set(world):
    params, overrides, _ = world
    # when the first notebook runs on the world
    notebook, shown = execute(
        "01_world_and_training_set.py",
        '{"accounts": len(accounts), "present": list(raw.present), "snapshots": len(table), '
        '"features": len(training.features), "per_as_of": int(per_as_of["snapshots"].sum()), '
        '"figures": len(plt.get_fignums())}',
        PARAMS=str(ROOT / "params.yaml"),
        OVERRIDES=overrides,
    )
    # then its figures are the tables' own
    accounts = pd.read_parquet(params.data.raw_dir / "accounts.parquet")
    table = pd.read_parquet(params.output_dir / "features" / "training_set.parquet")
    catalog = pd.read_csv(params.output_dir / "features" / "catalog.csv")
    assert shown["accounts"] == len(accounts)
    assert f"{len(accounts):,} accounts" in shown_text(notebook)
    assert set(shown["present"]) == {p.stem for p in params.data.raw_dir.glob("*.parquet")}
    assert shown["snapshots"] == shown["per_as_of"] == len(table)
    assert shown["features"] == len(catalog)
    assert shown["figures"] >= 3, "the plots were drawn"


def named(metrics: dict[str, float], prefix: str, suffix: str) -> list[str]:
    """The names between ``prefix`` and ``suffix`` of the metrics that have both, sorted."""
    return sorted(
        k.removeprefix(prefix).removesuffix(suffix)
        for k in metrics
        if k.startswith(prefix) and k.endswith(suffix)
    )


@pytest.mark.slow
def test_the_evaluation_notebook_reads_the_champion_run(world):
    params, overrides, trained = world
    # when the second notebook runs on the world's MLflow store
    _, shown = execute(
        "02_evaluate_a_run.py",
        '{"run_id": run.info.run_id, "version": champion.version, '
        '"oot_roc_auc": comparison.loc["roc_auc", "ensemble"], '
        '"baselines": baselines, "oracle_roc_auc": oracle.loc["roc_auc", "oracle"], '
        '"lead_rows": len(leads), "plays": plays, "figures": len(plt.get_fignums())}',
        PARAMS=str(ROOT / "params.yaml"),
        OVERRIDES=overrides,
    )
    # then it shows the run training logged, beside its baselines and the oracle
    metrics = trained.metrics
    assert (shown["run_id"], str(shown["version"])) == (trained.run_id, trained.version)
    assert shown["oot_roc_auc"] == pytest.approx(metrics["oot_roc_auc"])
    assert shown["baselines"] == named(metrics, "baseline_", "_roc_auc")
    assert shown["oracle_roc_auc"] == pytest.approx(metrics["oracle_oracle_roc_auc"])
    assert shown["lead_rows"] == len(params.train.lead_days)
    assert shown["plays"] == named(metrics, "effect_", "_ate")
    assert shown["plays"], "the run has play effects"
    assert shown["figures"] >= 4, "the plots were drawn"


@pytest.mark.slow
def test_the_account_notebook_explains_the_top_priority_account(world):
    params, overrides, _ = world
    # when the third notebook runs with no account chosen
    _, shown = execute(
        "03_explain_an_account.py",
        '{"account_id": account_id, "health": page["health"], '
        '"history": [h["as_of"] for h in page["history"]], '
        '"best_plan": plays["best_plan"], "effects": len(effects), '
        '"figures": len(plt.get_fignums())}',
        PARAMS=str(ROOT / "params.yaml"),
        OVERRIDES=overrides,
        ACCOUNT_ID=None,
    )
    # then it shows the latest run's top-priority account, its health, history and plays
    scores = catalog.SCORED.read(params.output_dir, LATEST)
    top = scores.loc[scores["priority"] == 1].iloc[0]
    assert shown["account_id"] == top["account_id"]
    assert shown["health"] == int(top["health"])
    assert shown["history"] == [str(EARLIER), str(LATEST)]
    plans = catalog.PLANNED.read(params.output_dir, LATEST)
    assert shown["best_plan"] == plans.set_index("account_id").loc[top["account_id"], "best_plan"]
    effects = catalog.PLAY_EFFECTS.read(params.output_dir, LATEST)
    assert shown["effects"] == int((effects["account_id"] == top["account_id"]).sum())
    assert shown["figures"] >= 3, "the plots were drawn"
