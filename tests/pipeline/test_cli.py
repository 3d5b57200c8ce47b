"""The CLI as schedulers and people use it: exit codes, messages, nothing half-written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from econml.dr import DRLearner
from typer.testing import CliRunner

from features.errors import FeatureInputError
from models.errors import ModelInputError
from pipeline.cli import EXIT_DATA, EXIT_FAILED, EXIT_PARAMS, app
from pipeline.config import ConfigError
from pipeline.errors import INPUT_ERRORS, InputError, MissingInput
from pipeline.io import DataContractError
from pipeline.io.catalog import MissingRun
from pipeline.io.registry import ModelIntegrityError, TrackingError
from pipeline.io.storage import OutputNotWritable
from pipeline.shared.effects import NoEffects
from pipeline.stages import validate as validate_stage
from pipeline.stages.plan import NoEffectModel, PlanError
from pipeline.stages.score import StaleAsOf

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
        "rows-needed",
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


def test_the_errors_raised_on_purpose_about_the_users_input_are_input_errors():
    pipeline_own = [
        ConfigError, DataContractError, MissingInput, MissingRun, ModelIntegrityError,
        TrackingError, OutputNotWritable, StaleAsOf, PlanError, NoEffectModel, NoEffects,
    ]  # fmt: skip
    assert not [e for e in pipeline_own if not issubclass(e, InputError)]
    # what used to be caught as FileNotFoundError still is
    assert issubclass(MissingRun, FileNotFoundError) and issubclass(MissingInput, FileNotFoundError)
    assert {InputError, FeatureInputError, ModelInputError} == set(INPUT_ERRORS)


@pytest.mark.parametrize("error", [ModelInputError, FeatureInputError, InputError])
def test_an_input_error_from_inside_a_stage_exits_3_with_its_message_alone(
    generated, monkeypatch, error
):
    # given a stage that refuses the user's data on purpose, from any layer
    def refuse(*args, **kwargs):
        raise error("no labelled snapshots to split")

    monkeypatch.setattr(validate_stage, "_write_profile", refuse)
    # when it runs
    result = runner.invoke(app, ["validate", *args_for(generated)])
    # then: bad input, said plainly, no traceback
    assert result.exit_code == EXIT_DATA, result.output
    assert "no labelled snapshots to split" in result.output
    assert "Traceback" not in result.output


def test_a_library_value_error_inside_a_stage_exits_1_naming_its_cause(generated, monkeypatch):
    # given a library failing with a ValueError deep inside a stage (not a check on the input)
    def library(*args, **kwargs):
        raise ValueError("boom")

    monkeypatch.setattr(validate_stage, "_write_profile", library)
    # when the stage runs
    result = runner.invoke(app, ["validate", *args_for(generated)])
    # then it is not reported as bad input: exit 1, one line with the cause and where it was
    # raised, then the traceback
    assert result.exit_code == EXIT_FAILED, result.output
    first = next(line for line in result.output.splitlines() if "boom" in line)
    assert "failed: builtins.ValueError: boom (raised at" in first
    assert "test_cli.py" in first and "not a problem with the input" in first
    assert "Traceback (most recent call last)" in result.output
    assert "invalid input" not in result.output


def test_score_with_a_bad_date_exits_2(tmp_path):
    result = runner.invoke(app, ["score", "--as-of", "tomorrow", *args_for(tmp_path)])
    assert result.exit_code == EXIT_PARAMS
    assert "expects a date as YYYY-MM-DD, got 'tomorrow'" in result.output
    assert not (tmp_path / "out").exists()


HEAVY = ("pandas", "lightgbm", "mlflow", "sklearn", "shap", "econml", "matplotlib", "sqlalchemy")


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["--version"], ["score", "--as-of", "2026-13-01"], ["plan-eval", "someday"]],
)
def test_help_version_and_a_bad_argument_answer_before_the_heavy_libraries_load(argv):
    """`healthscore --help` took 8-9 s and a bad --as-of 22-31 s to be refused: every stage's
    libraries were imported before the arguments were read. In a fresh interpreter, none is."""
    probe = (
        "import sys\n"
        "from pipeline.cli import app\n"
        f"try:\n    app({argv!r}, prog_name='healthscore')\n"
        "except SystemExit as done:\n    code = done.code\n"
        f"print('loaded', sorted(m for m in {HEAVY!r} if m in sys.modules), 'exit', code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, cwd=ROOT
    )
    expected_exit = 0 if argv[0].startswith("--") else EXIT_PARAMS
    assert f"loaded [] exit {expected_exit}" in result.stdout, result.stdout + result.stderr


def test_version_prints_the_installed_version():
    from importlib import metadata

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"healthscore {metadata.version('healthscore')}"


def test_loading_the_stages_prints_no_warning():
    """MLflow warned, in raw ANSI colour codes, on every command (the model class's predict)."""
    result = subprocess.run(
        [sys.executable, "-c", "import pipeline.stages"],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0
    assert result.stderr == ""


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
    # the longest steps say what they do when they start, not only when they end
    started = result.output.index("effects: estimating")
    assert started < result.output.index("train: effects took")
    assert (tmp_path / "out" / "validation" / "summary.json").exists()
    assert (tmp_path / "out" / "features" / "training_set.parquet").exists()
    # the synthetic world ends on synthetic.end_date: scored as of that day
    assert (tmp_path / "out" / "scores" / "as_of=2026-11-01" / "scores.parquet").exists()
    # and ends with the recommendations
    assert (tmp_path / "out" / "plans" / "as_of=2026-11-01" / "plans.parquet").exists()
    assert "all: recommendations →" in result.output
    # published, the digests written (a dry run: no webhook), the plays as CRM task files
    assert (tmp_path / "out" / "healthscore.duckdb").exists()
    assert (tmp_path / "out" / "notifications" / "payloads_2026-11-01.json").exists()
    assert "notify: dry run" in result.output
    assert (tmp_path / "out" / "crm" / "tasks_2026-11-01_hubspot.csv").exists()


SENSITIVITY = "Invalid input: sigma and nu must be non-negative."  # econml, on small books


@pytest.mark.slow
@pytest.mark.parametrize("estimates", ["as they come", "all failing"])
def test_all_runs_end_to_end_on_a_300_account_book_saying_what_it_could_not_estimate(
    tmp_path, monkeypatch, estimates
):
    if estimates == "all failing":  # as econml's sensitivity analysis does on some small books

        def robustness_value(self, T, **kwargs):
            raise ValueError(SENSITIVITY)

        monkeypatch.setattr(DRLearner, "robustness_value", robustness_value)
    # given a small book: 300 accounts of the default world, trained as fast as settings allow
    fast = [
        "synthetic.accounts=300", f"data.raw_dir={tmp_path}/raw",
        f"data.oracle_dir={tmp_path}/oracle", f"output_dir={tmp_path}/out",
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db", "train.n_jobs=1",
        "train.cv_folds=3", "train.tuning.trials=2", "train.tuning.folds=2",
        "train.lightgbm.n_estimators=60", "train.additive.n_estimators=60",
        "effects.lightgbm.n_estimators=40", "report.backfill_runs=0",
    ]  # fmt: skip
    # when the main job runs
    result = runner.invoke(app, ["all", "--params", str(ROOT / "params.yaml"),
                                 *(f"--set={kv}" for kv in fast)])  # fmt: skip
    # then it ends well, with a champion and today's scores
    assert result.exit_code == 0, result.output
    assert "champion → version 1" in result.output
    # the longest steps say what they do when they start, not only when they end
    started = result.output.index("effects: estimating")
    assert started < result.output.index("train: effects took")
    assert (tmp_path / "out" / "scores" / "as_of=2026-11-01" / "scores.parquet").exists()
    # and every logged kind of play is either estimated or said not to be, and why
    lines = result.output.splitlines()
    rare = next(line for line in lines if "fewer than 50 times in decision periods" in line)
    assert "not estimated" in rare  # the kinds this book logs too rarely
    for kind in ("exec_call", "strategic_review", "training", "csm_change", "discount"):
        estimated = any(f"effects: {kind} " in line and "on P(renew)" in line for line in lines)
        said = [line for line in lines if kind in line and "not estimated" in line]
        assert estimated or said, f"{kind}: neither estimated nor said why not"
    # and without an effect model there is no plan, and the log says why; else plans are made
    plans = tmp_path / "out" / "plans" / "as_of=2026-11-01" / "plans.parquet"
    if "has no effect model" in result.output:
        no_plans = next(line for line in lines if "all: no plans:" in line)
        assert "not estimated" in no_plans or "no play falls" in no_plans, no_plans
        assert not plans.exists()
    else:
        assert plans.exists()
    if estimates == "all failing":  # the win model still ships; the log says why no plans
        assert "registered without an effect model" in result.output
        assert "its sensitivity analysis cannot be computed" in result.output
        assert not plans.exists()


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
