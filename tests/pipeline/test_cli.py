"""The CLI as schedulers and people use it: exit codes, messages, nothing half-written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import EXIT_DATA, EXIT_PARAMS, app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def args_for(tmp: Path, *extra: str) -> list[str]:
    return [
        "--params", str(ROOT / "params.yaml"),
        "--set", "synthetic.accounts=80",
        "--set", "synthetic.history_months=12",
        "--set", "synthetic.prehistory_months=6",
        "--set", f"data.raw_dir={tmp}/raw",
        "--set", f"data.oracle_dir={tmp}/oracle",
        "--set", f"output_dir={tmp}/out",
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    result = runner.invoke(app, ["data", *args_for(tmp)])
    assert result.exit_code == 0, result.output
    return tmp


@pytest.mark.parametrize(
    "command",
    [
        "data",
        "validate",
        "features",
        "train",
        "score",
        "explain",
        "report",
        "all",
        "params",
        "bench",
        "simulate-loop",
    ],
)
def test_every_command_explains_itself(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "--params" in result.output
    assert "--set" in result.output


def test_data_writes_the_world_and_validate_profiles_it(generated):
    assert (generated / "raw" / "accounts.parquet").exists()
    assert (generated / "oracle" / "snapshots.parquet").exists()
    result = runner.invoke(app, ["validate", *args_for(generated)])
    assert result.exit_code == 0, result.output
    profile = pd.read_csv(generated / "out" / "validation" / "profile.csv")
    accounts = profile.set_index("table").loc["accounts"]
    assert accounts["rows"] == 80


def test_a_typo_in_params_exits_2_naming_the_key_and_writes_nothing(tmp_path):
    result = runner.invoke(app, ["data", *args_for(tmp_path, "--set", "synthetic.acounts=5")])
    assert result.exit_code == EXIT_PARAMS
    assert "synthetic.acounts: extra inputs are not permitted" in result.output
    assert not (tmp_path / "raw").exists()


def test_broken_input_exits_3_naming_table_and_column_and_writes_nothing(generated, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for path in (generated / "raw").iterdir():
        (raw / path.name).write_bytes(path.read_bytes())
    contracts = pd.read_parquet(raw / "contracts.parquet")
    broken = contracts.assign(end_date=contracts["start_date"])
    broken.to_parquet(raw / "contracts.parquet", index=False)
    result = runner.invoke(
        app,
        ["validate", *args_for(tmp_path, "--set", f"data.raw_dir={raw}")],
    )
    assert result.exit_code == EXIT_DATA, result.output
    assert "contracts" in result.output
    assert "end_date" in result.output
    assert not (tmp_path / "out").exists()


def test_report_without_a_scoring_run_exits_3_and_says_what_to_run(tmp_path):
    result = runner.invoke(app, ["report", *args_for(tmp_path)])
    assert result.exit_code == EXIT_DATA, result.output
    assert "run `healthscore score --as-of DATE` first" in result.output
    assert not (tmp_path / "out" / "reports").exists()


def test_score_without_a_model_exits_3_and_says_what_to_run(tmp_path):
    args = [*args_for(tmp_path), "--set", f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db"]
    result = runner.invoke(app, ["score", "--as-of", "2026-10-01", *args])
    assert result.exit_code == EXIT_DATA, result.output
    assert "run `healthscore train` first" in result.output


def test_score_with_a_bad_date_exits_2(tmp_path):
    result = runner.invoke(app, ["score", "--as-of", "tomorrow", *args_for(tmp_path)])
    assert result.exit_code == EXIT_PARAMS
    assert "YYYY-MM-DD" in result.output


@pytest.mark.slow
def test_all_runs_every_stage_and_ends_with_the_reports_path(tmp_path):
    from tests.pipeline.test_train import small

    args = ["--params", str(ROOT / "params.yaml"), *(f"--set={kv}" for kv in small(tmp_path))]
    result = runner.invoke(app, ["all", *args])
    assert result.exit_code == 0, result.output
    report = tmp_path / "out" / "reports" / "as_of=2026-11-01" / "index.html"
    assert result.output.rstrip().splitlines()[-1] == str(report)
    assert report.exists()
    # report.backfill_runs (2) earlier periods are scored first, so the report has a trend
    runs = sorted(p.name for p in (tmp_path / "out" / "scores").iterdir())
    assert runs == ["as_of=2026-09-01", "as_of=2026-10-01", "as_of=2026-11-01"]
    assert (tmp_path / "out" / "scores" / "as_of=2026-11-01" / "changes.parquet").exists()
    assert "champion → version 1" in result.output
    assert (tmp_path / "out" / "validation" / "summary.json").exists()
    assert (tmp_path / "out" / "features" / "training_set.parquet").exists()
    # the synthetic world ends on synthetic.end_date: scored as of that day
    assert (tmp_path / "out" / "scores" / "as_of=2026-11-01" / "scores.parquet").exists()
    # and ends with the recommendations
    assert (tmp_path / "out" / "plans" / "as_of=2026-11-01" / "plans.parquet").exists()
    assert "all: recommendations →" in result.output


def test_features_writes_the_training_set_and_its_catalog(generated):
    result = runner.invoke(app, ["features", *args_for(generated)])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(generated / "out" / "features" / "training_set.parquet")
    catalog = pd.read_csv(generated / "out" / "features" / "catalog.csv")
    assert not table.duplicated(["account_id", "as_of"]).any()
    assert set(catalog["name"]) <= set(table.columns)
    assert {"renewed", "renewal_arr", "outcome"} <= set(table.columns)
    assert not {"renewed", "renewal_arr", "outcome"} & set(catalog["name"])
    assert table["renewed"].dropna().isin([0.0, 1.0]).all()


def test_params_prints_the_effective_config(tmp_path):
    result = runner.invoke(app, ["params", *args_for(tmp_path)])
    assert result.exit_code == 0
    assert "synthetic.accounts = 80" in result.output


def test_module_entry_point_runs():
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "healthscore" in result.stdout
