"""Trust in the registry: verified model artifacts, a tracking store checked before use,
artifacts beside the store, and a promotion gate that scores both models on the same rows."""

from __future__ import annotations

import logging
import os
import pathlib
import pickle
import socket
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from models.win.ensemble import HealthEnsemble
from models.win.validation import out_of_time_split
from pipeline import stages
from pipeline.cli import EXIT_DATA, app
from pipeline.config import load_params
from pipeline.io import catalog, registry
from tests.models.test_ensemble import SMALL, accounts_frame

ROOT = Path(__file__).resolve().parents[2]
NAME = "trust"


@pytest.fixture(scope="module")
def small_model() -> tuple[registry.HealthModel, pd.DataFrame]:
    X, y, groups = accounts_frame(rows=300)
    ensemble = HealthEnsemble(**SMALL, seed=7).fit(X, y, groups=groups)
    catalog_frame = pd.DataFrame(
        {
            "name": list(X.columns),
            "component": ["usage", "support", "contract", "usage"],
            "categorical": [False, False, True, False],
            "description": ["{value}"] * 4,
        }
    )
    return registry.HealthModel(ensemble, catalog_frame), X


def register(folder: Path, model: registry.HealthModel, X: pd.DataFrame) -> str:
    """Register ``model`` in a SQLite store in ``folder``; its version."""
    registry.configure(f"sqlite:///{folder}/mlflow.db", "trust")
    with mlflow.start_run():
        return registry.log_scoring_model(model, X.head(20), NAME)


def stored_file(version: str, name: str) -> Path:
    """Where the store keeps one artifact file of a registered version."""
    return Path(MlflowClient().get_model_version_download_uri(NAME, version)) / name


class Planted:
    """A pickle that, once loaded, leaves a file behind: proof that it was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return pathlib.Path.touch, (self.marker,)


def test_a_registered_version_records_its_digest_and_loads(tmp_path, small_model):
    # given a small model registered
    model, X = small_model
    version = register(tmp_path, model, X)
    # when the champion is loaded
    registry.promote(NAME, "champion", version, registry.Contest("roc_auc", 0.5), 0.0, False)
    loaded, loaded_version = registry.load_champion(NAME, "champion")
    # then it is the registered model, and its version carries the digest of its files
    assert loaded_version == version
    np.testing.assert_array_equal(loaded.ensemble.predict_proba(X), model.ensemble.predict_proba(X))
    tags = MlflowClient().get_model_version(NAME, version).tags
    assert len(tags[registry.DIGEST_TAG]) == 64
    assert "python_model.pkl" in tags[registry.FILES_TAG]
    assert "MLmodel" in tags[registry.FILES_TAG]


def test_registering_says_the_digest_guards_the_pickle_instead_of_mlflows_warning(
    tmp_path, small_model, capfd, caplog, monkeypatch
):
    # given a small model (and the healthscore log's records, which stop propagating once the
    # CLI has set the log up in this process)
    model, X = small_model
    monkeypatch.setattr(logging.getLogger("healthscore"), "propagate", True)
    # when registered
    with caplog.at_level(logging.INFO, logger="healthscore"):
        version = register(tmp_path, model, X)
    # then MLflow's warning about pickles is not printed, and the log says what guards loads
    printed = capfd.readouterr()
    assert registry.PICKLE_WARNING not in printed.err + printed.out
    digest = MlflowClient().get_model_version(NAME, version).tags[registry.DIGEST_TAG]
    assert f"SHA-256 {digest[:12]}" in caplog.text
    # and MLflow's warning still reaches other uses of its logger
    assert not logging.getLogger("mlflow.pyfunc").filters


def test_a_tampered_model_file_is_refused_before_it_is_unpickled(tmp_path, small_model):
    # given a registered version whose pickle was replaced in the artifact store
    model, X = small_model
    version = register(tmp_path, model, X)
    marker = tmp_path / "unpickled"
    stored_file(version, "python_model.pkl").write_bytes(pickle.dumps(Planted(marker)))
    # when it is loaded, then it is refused, naming the version and the file
    with pytest.raises(registry.ModelIntegrityError) as refused:
        registry.load_champion(NAME, "champion", version)
    message = str(refused.value)
    assert f"model 'trust' version {version}" in message
    assert "python_model.pkl changed" in message
    assert "MLmodel" not in message, "only the changed file is named"
    assert not marker.exists(), "the tampered pickle was never loaded"
    # and the CLI's handler takes it as bad input (exit 3), not a crash
    assert isinstance(refused.value, ValueError)


def test_a_missing_or_added_file_is_refused(tmp_path, small_model):
    model, X = small_model
    version = register(tmp_path, model, X)
    stored_file(version, "requirements.txt").unlink()
    stored_file(version, "sitecustomize.py").write_text("print('hello')\n")
    with pytest.raises(registry.ModelIntegrityError) as refused:
        registry.load_champion(NAME, "champion", version)
    assert "requirements.txt is missing" in str(refused.value)
    assert "sitecustomize.py was added" in str(refused.value)


def test_a_version_without_a_digest_is_refused(tmp_path, small_model):
    # given a version registered before digests existed (here: its tag removed)
    model, X = small_model
    version = register(tmp_path, model, X)
    MlflowClient().delete_model_version_tag(NAME, version, registry.DIGEST_TAG)
    # when loaded, then refused with what to do
    with pytest.raises(registry.ModelIntegrityError, match="has no artifact digest") as refused:
        registry.load_champion(NAME, "champion", version)
    assert f"version {version}" in str(refused.value)
    assert "healthscore train" in str(refused.value)


def test_artifacts_go_beside_the_sqlite_store_not_into_the_working_directory(
    tmp_path, monkeypatch, small_model
):
    # given a working directory apart from the tracking store
    model, X = small_model
    cwd, store = tmp_path / "cwd", tmp_path / "store"
    cwd.mkdir()
    store.mkdir()
    monkeypatch.chdir(cwd)
    # when a model is registered (a run with a logged file too)
    version = register(store, model, X)
    mlflow.log_text("figures", "evaluation/notes.txt")  # the fluent run has ended: a new one
    mlflow.end_run()
    # then nothing lands in the working directory; the artifacts sit beside the database
    assert list(cwd.iterdir()) == []
    location = Path(MlflowClient().get_model_version_download_uri(NAME, version))
    assert location.is_relative_to(store / "mlartifacts" / "trust")
    assert (location / "python_model.pkl").exists()


def test_an_existing_experiment_keeps_its_artifact_location(tmp_path):
    # given an experiment created with MLflow's default location
    elsewhere = tmp_path / "elsewhere"
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    MlflowClient().create_experiment("kept", artifact_location=elsewhere.as_uri())
    # when configured, then it is used as it is
    registry.configure(f"sqlite:///{tmp_path}/mlflow.db", "kept")
    assert MlflowClient().get_experiment_by_name("kept").artifact_location == elsewhere.as_uri()


def test_a_sqlite_store_in_a_missing_folder_is_refused_not_created(tmp_path):
    uri = f"sqlite:///{tmp_path}/no/such/dir/mlflow.db"
    with pytest.raises(registry.TrackingError) as refused:
        registry.configure(uri, "trust")
    assert uri in str(refused.value)
    assert f"{tmp_path}/no/such/dir does not exist" in str(refused.value)
    assert "mlflow.tracking_uri" in str(refused.value)
    assert not (tmp_path / "no").exists()


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_tracking_server_is_refused_within_seconds():
    # given a tracking URI where no server listens
    uri = f"http://127.0.0.1:{closed_port()}"
    started = time.perf_counter()
    # when configured, then refused at once, naming the URI
    with pytest.raises(registry.TrackingError) as refused:
        registry.configure(uri, "trust")
    assert uri in str(refused.value)
    assert time.perf_counter() - started < 2 * registry.PROBE_TIMEOUT_S
    # and MLflow's own retries of a request that fails later are capped
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "60"


def test_the_http_limits_leave_a_setting_of_the_environment_alone(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")
    with pytest.raises(registry.TrackingError):
        registry.configure(f"http://127.0.0.1:{closed_port()}", "trust")
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "5"


def test_the_cli_says_what_is_wrong_with_the_store_in_one_line(tmp_path):
    # given a tracking URI in a folder that does not exist
    uri = f"sqlite:///{tmp_path}/typo/mlflow.db"
    args = ["--set", f"mlflow.tracking_uri={uri}", "--set", f"output_dir={tmp_path}/out"]
    # when training, then exit 3 with the URI and no traceback
    result = CliRunner().invoke(app, ["train", "--params", str(ROOT / "params.yaml"), *args])
    assert result.exit_code == EXIT_DATA
    assert uri in result.output
    assert "Traceback" not in result.output


# the promotion gate, end to end on a hand-made training set whose world changes: renewal
# follows usage_a in 2024 and usage_b from 2025 on
ACCOUNTS, MONTHS = 150, 36


def training_set(months: int) -> pd.DataFrame:
    """The first ``months`` monthly snapshots of every account (the same rows in every cut)."""
    rng = np.random.default_rng(5)
    as_of = pd.date_range("2024-01-01", periods=MONTHS, freq="MS")
    grid = pd.MultiIndex.from_product([range(ACCOUNTS), as_of], names=["account", "as_of"])
    frame = grid.to_frame(index=False)
    a, b = rng.normal(size=len(frame)), rng.normal(size=len(frame))
    signal = np.where(frame["as_of"] < "2025-01-01", a, b) + rng.normal(0, 0.5, len(frame))
    table = pd.DataFrame(
        {
            "account_id": "a" + frame["account"].astype(str),
            "as_of": frame["as_of"],
            "renewed": (signal > -0.6).astype(float),
            "arr": rng.uniform(5_000, 50_000, len(frame)),
            "contract_id": "c" + frame["account"].astype(str) + frame["as_of"].dt.strftime("%Y"),
            "days_to_renewal": rng.integers(1, 180, len(frame)),
            "usage_a": a,
            "usage_b": b,
            "segment": rng.choice(["smb", "enterprise"], len(frame)),
        }
    )
    return table[table["as_of"] <= as_of[months - 1]].reset_index(drop=True)


def write_features(output_dir: Path, table: pd.DataFrame) -> None:
    features = pd.DataFrame(
        {
            "name": ["usage_a", "usage_b", "segment"],
            "family": ["usage", "usage", "contract"],
            "component": ["usage", "usage", "contract"],
            "categorical": [False, False, True],
            "description": ["usage a is {value:.1f}", "usage b is {value:.1f}", "{value}"],
        }
    )
    catalog.TRAINING_SET.path(output_dir).parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(catalog.TRAINING_SET.path(output_dir), index=False)
    features.to_csv(catalog.FEATURE_CATALOG.path(output_dir), index=False)


@pytest.mark.slow
def test_the_gate_scores_champion_and_challenger_on_the_same_newer_rows(tmp_path):
    # given a champion trained on 2024 (its own out-of-time figure is high) …
    params = load_params(
        ROOT / "params.yaml",
        [
            f"output_dir={tmp_path}/out",
            f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
            "data.source=table",
            f"data.prebuilt.path={tmp_path}/unused.parquet",
            "features.horizon_days=60",
            "train.test_days=90",
            "train.n_jobs=1",
            "train.cv_folds=2",
            "train.members=[lightgbm, linear]",
            "train.calibration=sigmoid",
            "train.tuning.trials=0",
            "train.lightgbm.n_estimators=40",
        ],
    )
    write_features(params.output_dir, training_set(12))
    first = stages.run_train(params)
    assert first.promoted
    # … and a retrain on data through 2026, where the world has changed
    full = training_set(MONTHS)
    write_features(params.output_dir, full)
    # when the challenger meets the gate
    second = stages.run_train(params)
    # then both were scored on the challenger's out-of-time rows, newer than 2024
    client = MlflowClient()
    run = client.get_run(second.run_id).data
    labelled = full["renewed"].notna()
    test = full.iloc[out_of_time_split(full["as_of"], labelled, 60, 90)[1]]
    assert test["as_of"].min() > pd.Timestamp("2024-12-01")
    champion, _ = registry.load_champion(params.mlflow.model_name, "champion", first.version)
    plain = registry.as_model_input(test[champion.features], ["segment"])
    p = champion.predict(None, plain)
    from sklearn.metrics import roc_auc_score

    expected = roc_auc_score(test["renewed"], p["win_probability"])
    assert run.metrics["gate_roc_auc_champion"] == pytest.approx(expected)
    assert run.metrics["gate_roc_auc_challenger"] == pytest.approx(run.metrics["oot_roc_auc"])
    assert f"{len(test):,} out-of-time rows after its training data" in run.tags["promotion_reason"]
    # and the challenger, better on those rows, took the alias, although the champion's own
    # figure (on its older, easier window) is higher than the challenger's
    held = client.get_run(first.run_id).data.metrics["oot_roc_auc"]
    assert held > run.metrics["oot_roc_auc"], "the old gate would have kept the champion"
    assert run.metrics["gate_roc_auc_challenger"] > run.metrics["gate_roc_auc_champion"]
    assert second.promoted
    assert client.get_model_version_by_alias(params.mlflow.model_name, "champion").version == 2
