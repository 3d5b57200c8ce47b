"""Settings of training and scoring: the ``train`` and ``score`` sections of params.yaml.

Defined here, beside the code that uses them, so ``models/`` needs nothing from ``pipeline/``;
``pipeline.config`` composes them into the whole params object.
"""

from __future__ import annotations

from typing import Annotated, Literal

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
    # each numeric feature also enters multiplied by this one (scaled 0–1), so a signal can
    # count more or less as the renewal nears; null, or a column that is absent: no products
    interact_with: str | None = "days_to_renewal"


class AdditiveParams(_Section):
    """Boosted stumps: one feature per tree, so the member is additive (a learned scorecard)."""

    n_estimators: int = Field(default=300, ge=10)
    learning_rate: float = Field(default=0.05, gt=0, le=1)
    min_child_samples: int = Field(default=100, ge=1)


class RenewalSizeParams(_Section):
    """The renewal in dollars: P(expansion) and P(contraction) given renewal, two calibrated
    ensembles of ``members`` fitted on the renewed snapshots (the win model's settings)."""

    enabled: bool = True
    members: list[Literal["lightgbm", "linear", "additive"]] = Field(
        default_factory=lambda: ["additive"]
    )


class TuningParams(_Section):
    """Optuna's budget: ``trials`` trials of the tree member (and a fifth as many of the linear
    member's ``C``), so the same data, params and seed give the same search on any machine.
    ``timeout_s`` is only a safety cap: a search it cuts short is reported (and then depends on
    the machine's speed); null = no cap.

    With ``early_stopping_rounds`` > 0 the tree count is not searched: each fold grows up to
    ``max_trees`` and stops once its held-out log loss has not improved for that many rounds,
    and the deployed model gets the trial's mean best count (no larger than it needs to be).
    """

    trials: int = Field(default=10, ge=0)
    timeout_s: float | None = Field(default=1800.0, gt=0)
    folds: int = Field(default=3, ge=2)
    early_stopping_rounds: int = Field(default=50, ge=0)
    max_trees: int = Field(default=1000, ge=10)


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
    """The ``train`` section: splits, ensemble members, calibration, tuning and promotion."""

    seed: int = 42
    n_jobs: int = Field(default=2, ge=1)  # threads of every pool: LightGBM, OpenMP, BLAS, joblib
    cv_folds: int = Field(default=4, ge=2)
    test_days: int = Field(default=180, ge=1)
    holdout_share: float = Field(default=0.25, gt=0, le=0.5)  # tables with no as-of: ids held out
    members: list[Literal["lightgbm", "linear", "additive"]] = Field(
        default_factory=lambda: ["lightgbm", "linear", "additive"]
    )
    calibration: Literal["auto", "sigmoid", "beta", "isotonic", "venn_abers"] = "auto"
    min_member_weight: float = Field(default=0.01, ge=0, lt=1)  # share of the stack to keep one
    # auto: the stack when its out-of-fold log loss beats the best single member's beyond noise
    # (95 % interval over accounts), that member alone when it loses beyond noise, else a blend
    # shrunk toward the member; stack: always stack
    stacking: Literal["auto", "stack"] = "auto"
    refit_on_all: bool = True
    lightgbm: LightGBMParams = Field(default_factory=LightGBMParams)
    linear: LinearParams = Field(default_factory=LinearParams)
    additive: AdditiveParams = Field(default_factory=AdditiveParams)
    renewal_size: RenewalSizeParams = Field(default_factory=RenewalSizeParams)
    tuning: TuningParams = Field(default_factory=TuningParams)
    scorecard: ScorecardParams = Field(default_factory=ScorecardParams)
    promotion: PromotionParams = Field(default_factory=PromotionParams)
    top_k_percent: list[float] = Field(default_factory=lambda: [5.0, 10.0, 20.0])
    lead_days: list[int] = Field(default_factory=lambda: [30, 60, 90, 180])
    at_risk_below: float = Field(default=0.7, gt=0, lt=1)
    # lead time: "at risk" = the k % of the book with the lowest win probability on each date
    # (the list a team works); null: every account with p below at_risk_below
    at_risk_top_percent: float | None = Field(default=10.0, gt=0, le=100)
    # replicates of the bootstrap over accounts behind every test figure's 95 % interval
    bootstrap: int = Field(default=200, ge=20)

    @field_validator("members")
    @classmethod
    def _members(cls, value: list[str]) -> list[str]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"list each member once, at least one: {value}")
        return value


class Bands(_Section):
    """Health-score cut-offs: red below ``red_below``, yellow below ``yellow_below``, else green."""

    red_below: int = Field(default=50, ge=1, le=100)
    yellow_below: int = Field(default=75, ge=1, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Bands:
        if self.red_below > self.yellow_below:
            raise ValueError(
                f"red_below ({self.red_below}) must not exceed yellow_below ({self.yellow_below})"
            )
        return self


class PriorityWeights(_Section):
    """The value of acting on an account, in currency, that orders the priority list.

    The value is ``arr_at_risk`` × ARR × (1 − p) + ``expansion`` × the expected expansion ARR +
    ``opportunity`` × the open opportunity ARR (the feature named ``opportunity_feature``),
    times 0.5 ^ (days to renewal / ``half_life_days``) when that is set (a renewal sooner counts
    more). Weights are currency per currency; the default (1, 0, 0, none) is ARR at risk alone.
    Ties go to the larger ARR, then the account id, so the rank is unique.
    """

    arr_at_risk: float = Field(default=1.0, ge=0)
    expansion: float = Field(default=0.0, ge=0)
    opportunity: float = Field(default=0.0, ge=0)
    opportunity_feature: str | None = "open_expansion_usd"
    half_life_days: float | None = Field(default=None, gt=0)


class ScoreConfig(_Section):
    """Batch scoring: bands, explanations, alerts, monitoring (the ``score`` section)."""

    version: str | None = None  # a registered version to score with; null: mlflow.alias
    bands: Bands = Field(default_factory=Bands)
    top_drivers: int = Field(default=3, ge=1, le=10)
    # what the account is rather than what the team can change (its contract, size, segment,
    # a prebuilt table's unmapped columns): shown apart, never as a top risk, strength or growth
    context_components: list[str] = Field(default_factory=lambda: ["contract", "profile"])
    chunk_rows: int = Field(default=100_000, ge=100)
    alert_drop: int = Field(default=10, ge=1)  # health points lost since the previous run
    psi_threshold: float = Field(default=0.2, gt=0)
    forecast_days: int = Field(default=90, ge=1)  # "the coming quarter"
    priority: PriorityWeights = Field(default_factory=PriorityWeights)


class EffectsConfig(_Section):
    """Effect estimation from the play log (the ``effects`` section): fitted by ``make train``."""

    enabled: bool = True  # false: no effect model (and no plans)
    min_propensity: float = Field(default=0.005, gt=0, lt=0.5)  # DR clipping, explicit
    overlap: tuple[float, float] = (0.02, 0.98)  # outside: the account is "extrapolated"
    folds: int = Field(default=3, ge=2)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)  # intervals at 1 − alpha
    modifiers: list[str] = Field(default_factory=list)  # features the log-odds shift varies with
    min_treated: int = Field(default=50, ge=1)  # kinds logged fewer times are not estimated
    lightgbm: LightGBMParams = Field(
        default_factory=lambda: LightGBMParams(
            n_estimators=100, learning_rate=0.1, num_leaves=15, min_child_samples=50
        )
    )


class Play(_Section):
    """One intervention kind in the catalog: what it costs and when and where it may run."""

    cost: float = Field(default=0.0, ge=0)  # money per play
    # share of the renewal's ARR given away if the account renews (a discount): counted against
    # the ARR saved, so a plan saves ARR × ((p0 + lift) × (1 − share) − p0)
    arr_share: float = Field(default=0.0, ge=0, lt=1)
    csm_hours: float = Field(default=0.0, ge=0)
    exec_hours: float = Field(default=0.0, ge=0)
    min_days: int = Field(default=0, ge=0)  # start at least this many days before the renewal …
    max_days: int = Field(default=365, ge=0)  # … and at most this many
    min_arr: float = Field(default=0.0, ge=0)  # only accounts with at least this ARR
    offsets: list[int] = Field(default_factory=lambda: [0])  # timing slots: days after as_of


class Capacity(_Section):
    """What the period can spend (null = unlimited)."""

    csm_hours: float | None = Field(default=None, ge=0)
    exec_hours: float | None = Field(default=None, ge=0)
    budget: float | None = Field(default=None, ge=0)


# the usual customer-success plays; a team lists its own (kinds as its log names them)
DEFAULT_CATALOG = {
    "exec_call": Play(cost=800, csm_hours=2, exec_hours=1, min_days=30, max_days=180,
                      min_arr=20_000),
    "strategic_review": Play(cost=2500, csm_hours=8, min_days=45, max_days=180),
    "training": Play(cost=1200, csm_hours=4, min_days=60, max_days=365),
    "csm_change": Play(cost=3000, csm_hours=10, min_days=90, max_days=365),
    "discount": Play(cost=0, arr_share=0.12, csm_hours=1, min_days=14, max_days=120),
}  # fmt: skip


class ExplorationConfig(_Section):
    """Randomised plays across every kind and eligible account, and how they are read out."""

    # this share of the period's capacity is spent on randomised plays across every kind and
    # eligible account, every arm logged with its propensity; 0 = no exploration
    share: float = Field(default=0.1, ge=0, lt=1)
    controls_per_play: float = Field(default=2.0, ge=0)  # no-play controls (they cost nothing)
    surrogate_days: int = Field(default=60, ge=1)  # read a play's effect this long after it
    min_rows: int = Field(default=10, ge=2)  # per arm and in the control, else no estimate
    # read each arm's outcome against what the win probability at the decision predicts of it
    # (regression adjustment: still unbiased, narrower where that probability explains it)
    adjust: bool = True
    # how a kind the experiment has read out is estimated per account: "off" keeps the effect
    # model as fitted (the read-out is still logged and written beside it: experiment.csv);
    # "shrink" moves its estimates toward the experiment's view of their bias as far as the
    # experiment is sure of it (empirical Bayes across kinds), "shift" by all of it, "slope"
    # spreads the experiment's average by each account's slope p(1 − p). Off by default: on
    # 10,000-account loops, grounding on 10–50 randomised rows a kind sank single months' value
    # to 0.14–0.25 of the oracle (docs/interventions.md)
    ground: Literal["shrink", "shift", "slope", "off"] = "off"

    @field_validator("ground", mode="before")
    @classmethod
    def _off_as_written(cls, value: object) -> object:
        # YAML reads a bare `off` as false: take it as the word the comment offers
        return "off" if value is False else value


class PlanConfig(_Section):
    """Recommended plays per account and the portfolio allocation (the ``plan`` section)."""

    catalog: dict[str, Play] = Field(default_factory=lambda: dict(DEFAULT_CATALOG))
    max_plays: int = Field(default=2, ge=1)
    exclusions: list[tuple[str, str]] = Field(  # kinds never together
        default_factory=lambda: [("csm_change", "exec_call")]
    )
    capacity: Capacity = Field(
        default_factory=lambda: Capacity(csm_hours=1500, exec_hours=60, budget=250_000)
    )
    max_exact_plans: int = Field(default=50_000, ge=1)
    epsilon: float = Field(default=0.1, ge=0, lt=1)  # randomised holdout share
    random_share: float = Field(default=0.5, ge=0, le=1)  # of the holdout: a random allowed plan
    exploration: ExplorationConfig = Field(default_factory=ExplorationConfig)
    # the effect model's estimates moved this share of the way to the win model re-scored
    # with one more play of the kind (0: the effect model alone); "experiment": a share per
    # kind, as far as the experiment's read-out agrees with the re-prediction (nothing moves
    # before there is one). On 10,000-account loops it added +0.021 [+0.005, +0.038] of the
    # oracle a month over 36 seed-months (docs/interventions.md)
    reprediction_weight: Annotated[float, Field(ge=0, le=1)] | Literal["experiment"] = "experiment"
    seed: int = 42
