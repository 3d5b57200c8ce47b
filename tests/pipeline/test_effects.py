"""The effects step never stops training: what the data cannot give it leaves out, saying why."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from models.errors import ModelInputError
from pipeline.config import ConfigError, load_params
from pipeline.shared import effects
from pipeline.shared.effects import NoEffects, run_effects

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def params():
    return load_params(ROOT / "params.yaml")


@pytest.fixture
def records(monkeypatch, caplog):
    """The healthscore log's records (its logger stops propagating once the CLI sets it up)."""
    monkeypatch.setattr(logging.getLogger("healthscore"), "propagate", True)
    caplog.set_level(logging.INFO, logger="healthscore")
    return caplog


def failing_with(monkeypatch, error: Exception) -> None:
    def fit_effects(*args):
        raise error

    monkeypatch.setattr(effects, "fit_effects", fit_effects)


def step(params):
    return run_effects(params, pd.DataFrame(), [], pd.DataFrame(), None)


def test_data_that_cannot_give_an_estimate_leaves_no_effect_model_and_a_warning(
    params, monkeypatch, records
):
    # given a log from which no kind can be estimated
    failing_with(monkeypatch, ModelInputError("no play's effect can be estimated from the log"))
    # when training reaches the effects step
    outcome = step(params)
    # then it goes on without an effect model, saying why at WARNING, with no traceback
    assert outcome.fit is None
    assert (
        outcome.note == "not estimated on this data: no play's effect can be estimated from the log"
    )
    (record,) = [r for r in records.records if r.levelno == logging.WARNING]
    assert "registered without an effect model" in record.getMessage()
    assert record.exc_info is None


def test_a_library_failure_in_the_effects_step_is_logged_with_its_traceback_and_training_goes_on(
    params, monkeypatch, records
):
    failing_with(monkeypatch, ValueError("sigma and nu must be non-negative"))
    outcome = step(params)
    assert outcome.fit is None
    assert outcome.note == "failed: ValueError: sigma and nu must be non-negative"
    (record,) = [r for r in records.records if r.levelno == logging.ERROR]
    assert "registered without an effect model" in record.getMessage()
    assert record.exc_info is not None


def test_nothing_to_learn_from_is_said_at_info(params, monkeypatch, records):
    failing_with(monkeypatch, NoEffects("no interventions log"))
    outcome = step(params)
    assert (outcome.fit, outcome.note) == (None, "no interventions log")
    assert [r.levelname for r in records.records] == ["INFO"]


def test_a_params_mistake_still_stops_training(params, monkeypatch):
    failing_with(monkeypatch, ConfigError("effects.modifiers: not features of the model: ['x']"))
    with pytest.raises(ConfigError):
        step(params)


def test_modifiers_that_are_not_features_are_refused_before_any_work():
    params = load_params(ROOT / "params.yaml", ["effects.modifiers=[tenure_days, no_such]"])
    with pytest.raises(ConfigError, match=r"effects.modifiers: not features .*no_such"):
        effects.check_modifiers(params, ["tenure_days"])
