"""Settings of training and scoring: the ``train`` and ``score`` sections of params.yaml.

Defined here, beside the code that uses them, so ``models/`` needs nothing from ``pipeline/``;
``pipeline.config`` composes them into the whole params object.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LightGBMParams(_Section):
    """The tree member (and the single-LightGBM baseline). Optuna tunes the main ones."""

    n_estimators: int = Field(default=400, ge=10)
    learning_rate: float = Field(default=0.03, gt=0, le=1)
    num_leaves: int = Field(default=15, ge=2)
    min_child_samples: int = Field(default=40, ge=1)
    subsample: float = Field(default=0.8, gt=0, le=1)
    colsample_bytree: float = Field(default=0.8, gt=0, le=1)
    reg_lambda: float = Field(default=1.0, ge=0)


class LinearParams(_Section):
    """The regularised logistic regression on standardised features (L2; ``C`` = 1/strength)."""

    C: float = Field(default=0.05, gt=0)
    max_iter: int = Field(default=500, ge=50)


class AdditiveParams(_Section):
    """Boosted stumps: one feature per tree, so the member is additive (a learned scorecard)."""

    n_estimators: int = Field(default=300, ge=10)
    learning_rate: float = Field(default=0.05, gt=0, le=1)
    min_child_samples: int = Field(default=100, ge=1)


class TuningParams(_Section):
    """Optuna's budget: whichever of trials or seconds runs out first ends the study."""

    trials: int = Field(default=25, ge=0)
    timeout_s: float = Field(default=90.0, gt=0)
    folds: int = Field(default=3, ge=2)


class ScorecardParams(_Section):
    """The classic hand-weighted health score: component → weight (components from the catalog)."""

    weights: dict[str, float] = Field(
        default_factory=lambda: {"usage": 0.4, "engagement": 0.2, "sentiment": 0.2, "surveys": 0.2}
    )


class PromotionParams(_Section):
    """The gate: the new version takes the ``champion`` alias only if it beats the current one."""

    metric: Literal["roc_auc", "log_loss", "brier"] = "roc_auc"
    min_improvement: float = Field(default=0.0, ge=0)


class TrainConfig(_Section):
    seed: int = 42
    n_jobs: int = Field(default=2, ge=1)  # LightGBM threads; more than the free cores is slower
    cv_folds: int = Field(default=4, ge=2)
    test_days: int = Field(default=180, ge=1)
    holdout_share: float = Field(default=0.25, gt=0, le=0.5)  # tables with no as-of: ids held out
    members: list[Literal["lightgbm", "linear", "additive"]] = Field(
        default_factory=lambda: ["lightgbm", "linear", "additive"]
    )
    calibration: Literal["auto", "isotonic", "sigmoid", "venn_abers"] = "auto"
    min_member_weight: float = Field(default=0.01, ge=0, lt=1)  # share of the stack to keep one
    refit_on_all: bool = True
    lightgbm: LightGBMParams = Field(default_factory=LightGBMParams)
    linear: LinearParams = Field(default_factory=LinearParams)
    additive: AdditiveParams = Field(default_factory=AdditiveParams)
    tuning: TuningParams = Field(default_factory=TuningParams)
    scorecard: ScorecardParams = Field(default_factory=ScorecardParams)
    promotion: PromotionParams = Field(default_factory=PromotionParams)
    top_k_percent: list[float] = Field(default_factory=lambda: [5.0, 10.0, 20.0])
    lead_days: list[int] = Field(default_factory=lambda: [30, 60, 90, 180])
    at_risk_below: float = Field(default=0.7, gt=0, lt=1)

    @field_validator("members")
    @classmethod
    def _members(cls, value: list[str]) -> list[str]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"list each member once, at least one: {value}")
        return value


class Bands(_Section):
    red_below: int = Field(default=50, ge=1, le=100)
    yellow_below: int = Field(default=75, ge=1, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Bands:
        if self.red_below > self.yellow_below:
            raise ValueError(
                f"red_below ({self.red_below}) must not exceed yellow_below ({self.yellow_below})"
            )
        return self


class ScoreConfig(_Section):
    """Batch scoring: bands, explanations, alerts, monitoring (the ``score`` section)."""

    version: str | None = None  # a registered version to score with; null: mlflow.alias
    bands: Bands = Field(default_factory=Bands)
    top_drivers: int = Field(default=3, ge=1, le=10)
    chunk_rows: int = Field(default=100_000, ge=100)
    alert_drop: int = Field(default=10, ge=1)  # health points lost since the previous run
    psi_threshold: float = Field(default=0.2, gt=0)
    forecast_days: int = Field(default=90, ge=1)  # "the coming quarter"
