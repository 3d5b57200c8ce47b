"""Prebuilt-table mode end to end: a one-row-per-customer export is validated, typed, trained on,
evaluated and registered like the event-log mode, with no hand work on its columns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from pipeline.cli import EXIT_DATA, app

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def churn_table(rows: int, seed: int) -> pd.DataFrame:
    """A telco-style export: text categories, numbers stored as text with blanks, a Yes/No label."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], rows, p=[0.5, 0.3, 0.2])
    tenure = rng.integers(0, 72, rows)
    monthly = np.round(rng.uniform(20, 110, rows), 2)
    total = np.where(tenure == 0, " ", np.round(monthly * tenure, 2).astype(str))
    risk = 1.2 * (contract == "Month-to-month") - 0.03 * tenure + 0.01 * (monthly - 60) - 0.6
    churn = rng.random(rows) < 1 / (1 + np.exp(-risk))
    return pd.DataFrame(
        {
            "customerID": [f"{i:04d}-{seed}" for i in range(rows)],
            "Contract": contract,
            "tenure": tenure,
            "MonthlyCharges": monthly,
            "TotalCharges": total,
            "PaperlessBilling": rng.choice(["Yes", "No"], rows),
            "Churn": np.where(churn, "Yes", "No"),
        }
    )


def table_args(tmp: Path, path: Path, *extra: str) -> list[str]:
    settings = [
        "data.source=table",
        f"data.prebuilt.path={path}",
        "data.prebuilt.id_column=customerID",
        "data.prebuilt.label_column=Churn",
        "data.prebuilt.arr_column=MonthlyCharges",
        f"output_dir={tmp}/out",
        f"mlflow.tracking_uri=sqlite:///{tmp}/mlflow.db",
        "mlflow.model_name=telco",
        "train.n_jobs=1",
        "train.cv_folds=3",
        "train.tuning.trials=2",
        "train.tuning.folds=2",
        "train.lightgbm.n_estimators=60",
        "train.additive.n_estimators=60",
        *extra,
    ]
    settings += (
        []
        if any(e.startswith("data.prebuilt.churn_value") for e in extra)
        else [
            "data.prebuilt.churn_value=Yes"  # YAML reads an unquoted Yes as true: both must work
        ]
    )
    return [arg for s in settings for arg in ("--set", s)]


def test_a_prebuilt_table_trains_and_registers_a_champion(tmp_path):
    # given a churn export with no time column
    path = tmp_path / "telco.csv"
    churn_table(1500, seed=1).to_csv(path, index=False)
    runner = CliRunner()
    # when it is validated, typed and trained on
    for command in ("validate", "features", "train"):
        result = runner.invoke(app, [command, "--quiet", *table_args(tmp_path, path)])
        assert result.exit_code == 0, f"{command}: {result.output}"
    # then the typed table and its catalog are where training reads them
    catalog = pd.read_csv(tmp_path / "out/features/catalog.csv")
    assert set(catalog["source_column"]) == {
        "Contract", "tenure", "MonthlyCharges", "TotalCharges", "PaperlessBilling"
    }  # fmt: skip
    profile = pd.read_csv(tmp_path / "out/validation/profile.csv").set_index("column")
    assert profile.loc["customerID", "role"] == "id" and profile.loc["Churn", "role"] == "label"
    # and the run holds the usual metrics on whole held-out customers, no oracle, one champion
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    version = client.get_model_version_by_alias("telco", "champion")
    metrics = client.get_run(version.run_id).data.metrics
    assert 0.7 < metrics["oot_roc_auc"] <= 1.0, metrics["oot_roc_auc"]
    assert metrics["baseline_lightgbm_roc_auc"] > 0.6
    assert not any(k.startswith("oracle_") for k in metrics)
    assert metrics["oot_ece"] < 0.1
    # named by what it is: ids held out, not "out of time", and no training date that is NaT
    assert client.get_run(version.run_id).data.tags["trained_through"] == "no as-of dates"
    # and another table of the same form, without its label, is scored like the event-log mode
    later = tmp_path / "telco_now.csv"
    churn_table(300, seed=3).drop(columns="Churn").to_csv(later, index=False)
    args = ["score", "--quiet", "--as-of", "2026-11-01", "--input", str(later)]
    result = runner.invoke(app, [*args, *table_args(tmp_path, path)])
    assert result.exit_code == 0, result.output
    scores = pd.read_parquet(tmp_path / "out/scores/as_of=2026-11-01/scores.parquet")
    assert len(scores) == 300 and sorted(scores["priority"]) == list(range(1, 301))
    assert scores["top_risk_1"].notna().any()
    # no renewal dates: no forecast of renewals due (rather than one of zeros)
    summary = json.loads((tmp_path / "out/scores/as_of=2026-11-01/summary.json").read_text())
    assert summary["forecast"] is None
    np.testing.assert_allclose(
        scores["arr_at_risk"], scores["arr"] * (1 - scores["win_probability"])
    )
    # and the report is written for it too: no raw tables, so no footprint or activity
    result = runner.invoke(app, ["report", "--quiet", *table_args(tmp_path, path)])
    assert result.exit_code == 0, result.output
    index = tmp_path / "out/reports/as_of=2026-11-01/index.html"
    assert result.output.strip() == str(index)
    html = index.read_text(encoding="utf-8")
    assert '"personas":[]' in html and html.count("<script") == 2


def test_a_bad_label_exits_3_naming_the_column_and_writes_nothing(tmp_path):
    path = tmp_path / "telco.csv"
    churn_table(200, seed=2).assign(Churn="maybe").to_csv(path, index=False)
    quoted = table_args(tmp_path, path, 'data.prebuilt.churn_value="Yes"')
    result = CliRunner().invoke(app, ["features", *quoted])
    assert result.exit_code == EXIT_DATA
    assert "label column 'Churn' never equals churn value 'Yes'" in result.output
    assert not (tmp_path / "out/features").exists()


def test_a_missing_table_exits_3(tmp_path):
    result = CliRunner().invoke(app, ["validate", *table_args(tmp_path, tmp_path / "no.csv")])
    assert result.exit_code == EXIT_DATA
    assert "no.csv not found" in result.output


def test_a_prebuilt_table_with_renewal_arr_learns_churn_shrink_or_grow(tmp_path):
    # given an export that also says what each renewal came in at: long tenure grows
    table = churn_table(1500, seed=4)
    rng = np.random.default_rng(4)
    grow = rng.random(len(table)) < 1 / (1 + np.exp(-(table["tenure"] - 36) / 10))
    shrink = ~grow & (rng.random(len(table)) < 0.3)
    ratio = np.where(grow, rng.uniform(1.1, 1.4, len(table)),
                     np.where(shrink, rng.uniform(0.6, 0.9, len(table)), 1.0))  # fmt: skip
    table["RenewedAt"] = np.where(table["Churn"] == "Yes", np.nan,
                                  np.round(table["MonthlyCharges"] * ratio, 2))  # fmt: skip
    path = tmp_path / "telco.csv"
    table.to_csv(path, index=False)
    args = table_args(tmp_path, path, "data.prebuilt.renewal_arr_column=RenewedAt")
    runner = CliRunner()
    for command in ("features", "train"):
        result = runner.invoke(app, [command, "--quiet", *args])
        assert result.exit_code == 0, f"{command}: {result.output}"
    # then the renewal ARR is never a feature, and the run measures the size model
    catalog = pd.read_csv(tmp_path / "out/features/catalog.csv")
    assert "RenewedAt" not in set(catalog["source_column"])
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    version = client.get_model_version_by_alias("telco", "champion")
    metrics = client.get_run(version.run_id).data.metrics
    assert metrics["size_expansion_auc"] > 0.7, metrics["size_expansion_auc"]
    assert metrics["size_renewals"] > 0
    # and a negative renewal ARR is refused, naming the column and the row
    table.loc[3, "RenewedAt"] = -5
    table.loc[3, "Churn"] = "No"
    table.to_csv(path, index=False)
    result = runner.invoke(app, ["features", "--quiet", *args])
    assert result.exit_code == 3
    assert "'RenewedAt'" in result.output and "rows [4]" in result.output
