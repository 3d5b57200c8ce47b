"""`healthscore recalibrate`: the champion corrected from renewals closed since it was trained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from scipy.special import expit, logit
from typer.testing import CliRunner

from pipeline import stages
from pipeline.cli import EXIT_DATA, app
from pipeline.config import load_params
from pipeline.io import catalog, registry
from tests.pipeline.test_train import small

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A model trained on data cut six months before the end, and the full training set."""
    tmp = tmp_path_factory.mktemp("recalibrate")
    args = small(tmp, "effects.enabled=false", "recalibrate.min_rarer_outcome=10")
    params = load_params(ROOT / "params.yaml", args)
    stages.run_data(params, quiet=True)
    stages.run_features(params, quiet=True)
    end = pd.read_parquet(catalog.TRAINING_SET.path(params.output_dir))["as_of"].max()
    cutoff = (end - pd.DateOffset(months=6)).date()
    early = load_params(ROOT / "params.yaml", [*args, f"data.cutoff={cutoff}"])
    stages.run_features(early, quiet=True)
    trained = stages.run_train(early)
    stages.run_features(params, quiet=True)  # newer data: renewals closed since training
    return params, trained


def _drift(params, share: float, seed: int = 0) -> pd.DataFrame:
    """Turn ``share`` of the renewals closed since training into churns: the book got worse."""
    path = catalog.TRAINING_SET.path(params.output_dir)
    table = pd.read_parquet(path)
    model, _ = registry.load_champion(params.mlflow.model_name, params.mlflow.alias)
    new = (table["as_of"] > pd.Timestamp(model.trained["trained_through"])) & (
        table["renewed"] == 1
    )
    flip = new & (np.random.default_rng(seed).random(len(table)) < share)
    table.loc[flip, "renewed"] = 0.0
    table.to_parquet(path, index=False)
    return table


def test_a_correction_that_does_not_help_is_measured_and_not_registered(world):
    params, trained = world
    client = MlflowClient(params.mlflow.tracking_uri)
    result = stages.run_recalibrate(params)
    c = result.correction
    # the figures rest on the renewals closed since training, counted
    assert c.renewals > 0 and 10 <= c.non_renewals < c.renewals and c.accounts >= 5
    assert c.low <= c.gain <= c.high
    run = client.get_run(result.run_id)
    assert run.data.tags["kind"] == "recalibration"
    assert run.data.metrics["recalibration_renewals"] == c.renewals
    # on an unchanged world the probabilities need no correction beyond noise: nothing moves
    assert not c.helps and result.version is None
    held = client.get_model_version_by_alias(params.mlflow.model_name, params.mlflow.alias)
    assert str(held.version) == trained.version


def test_a_drifted_book_is_corrected_and_the_new_version_takes_the_alias(world):
    params, trained = world
    old, _ = registry.load_champion(params.mlflow.model_name, params.mlflow.alias)
    table = _drift(params, 0.25)
    result = stages.run_recalibrate(params)
    c = result.correction
    # the realised renewal rate fell; the model over-predicts and the correction sees it
    assert c.realised < c.predicted_before and c.predicted_after < c.predicted_before
    assert c.helps and c.log_loss_after < c.log_loss_before and c.ece_after < c.ece_before
    assert abs(c.predicted_after - c.realised) < abs(c.predicted_before - c.realised)
    assert result.version is not None and result.version != trained.version
    new, version = registry.load_champion(params.mlflow.model_name, params.mlflow.alias)
    assert version == result.version
    # the members are the same; the probability is the old one moved by the two numbers
    rows = table[table["renewed"].notna()].head(200)
    for c_name in old.ensemble.categories_:
        rows = rows.assign(**{c_name: rows[c_name].astype("category")})
    p_old = old.ensemble.predict_proba(rows[old.features])[:, 1]
    p_new = new.ensemble.predict_proba(rows[new.features])[:, 1]
    expected = expit(c.intercept + c.slope * logit(np.clip(p_old, 1e-4, 1 - 1e-4)))
    np.testing.assert_allclose(p_new, np.clip(expected, 1e-4, 1 - 1e-4), atol=1e-9)
    np.testing.assert_allclose(
        old.ensemble.decision_function(rows[old.features]),
        new.ensemble.decision_function(rows[new.features]),
    )
    assert new.trained["calibration"].endswith("recalibrated")
    assert new.trained["recalibrated_from"] == trained.version
    # the nightly job scores with it as with any champion
    scored = stages.run_score(params)
    assert scored.model_version == result.version and scored.accounts > 0
    # and nothing has closed since this correction: a second call has nothing to learn from
    runner = CliRunner()
    args = ["recalibrate", "--params", str(ROOT / "params.yaml")]
    for key, value in (("output_dir", params.output_dir),
                       ("mlflow.tracking_uri", params.mlflow.tracking_uri)):  # fmt: skip
        args += ["--set", f"{key}={value}"]
    out = runner.invoke(app, args)
    assert out.exit_code == EXIT_DATA, out.output
    assert "no renewal has closed since" in out.output
