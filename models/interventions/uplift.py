"""Effect of each intervention kind on the renewal probability, from an observational play log.

The log is confounded: CSMs act on accounts they perceive at risk, so the treated renew less even
where the plays help. Re-predicting the win model with a play switched on learns that correlation
and nothing else. The estimates here come from methods built for observational treatment data:

- a **doubly robust learner** (econml's ``DRLearner``): cross-fitted propensity (which play, given
  the decision context) and outcome models on the context features, folds grouped by account,
  propensities clipped explicitly at ``min_propensity``;
- its final stage refitted on the same cross-fitted nuisances (``refit_final``): a constant,
  which is the **cross-fitted AIPW average effect** per kind with its confidence interval and a
  sensitivity figure (econml's omitted-variable-bias robustness value); one level per segment,
  the average effect per kind and segment;
- the **per-account effect** as a log-odds shift: a play moves an account's log-odds of renewal,
  so its effect on the probability scales with the slope ``g = p0(1 − p0)``, largest where the
  outcome is least certain. With no effect modifiers each kind has one shift, the AIPW average
  spread by ``g / mean(g)`` (interval likewise); with modifiers ``m`` (standardised features) the
  final stage fits ``τ(x) = g · (θ₀ + θ · m)`` and its intervals are statsmodels' (robust);
- an **S-learner** (logistic regression of renewal on the win model's log-odds, segment and
  play) as a check beside the DR estimates.

An account is ``extrapolated`` for a kind where its propensity for that kind lies outside the logged
overlap (``overlap`` bounds): its effect there is a model's extrapolation, not an estimate from
comparable logged decisions.

A kind whose average effect or sensitivity analysis cannot be computed on the log (on a small book,
a few of its plays on accounts the propensity model gave almost no chance of getting it can make
econml's variance terms negative) is left out, with the reason in ``skipped_``, and the others are
refitted without its rows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from econml.dr import DRLearner
from econml.sklearn_extensions.linear_model import StatsModelsLinearRegression
from scipy.special import logit
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import FunctionTransformer

from models.errors import ModelInputError

CONTROL = "none"
AVERAGE_COLUMNS = ("kind", "ate", "lo", "hi", "se", "robustness")


def _constant(X: np.ndarray) -> np.ndarray:
    return np.ones((X.shape[0], 1))


def _not_estimable(exc: Exception) -> str:
    """Why a kind's average effect cannot be computed, in words (econml's message kept)."""
    if "sigma and nu" in str(exc):  # econml's sensitivity analysis: a variance term below zero
        return (
            "its sensitivity analysis cannot be computed: a few of its plays went to accounts the "
            "propensity model gave almost no chance of getting it, and they would carry the "
            "estimate (too few comparable logged decisions; econml: sigma and nu must be "
            "non-negative)"
        )
    return f"its average effect cannot be computed on this log ({type(exc).__name__}: {exc})"


@dataclass(frozen=True)
class Layout:
    """Columns of the final-stage input X: [g, segment one-hot ..., modifiers ...]."""

    segments: int
    modifiers: int

    def segment_design(self, X: np.ndarray) -> np.ndarray:
        """The segment indicator columns of a design matrix."""
        return X[:, 1 : 1 + self.segments]

    def slope_design(self, X: np.ndarray) -> np.ndarray:
        """The slope column and its products with the modifiers."""
        g = X[:, :1]
        return np.column_stack([g, g * X[:, 1 + self.segments :]])


class PlayEffects:
    """Doubly robust per-kind effects on renewal probability, with an S-learner check.

    ``fit(context, treatment, renewed, groups, p0, segment, modifiers)``: ``context`` is the
    decision-time feature frame (numbers and categoricals, missing values allowed), ``treatment``
    the kind logged per row (``control`` for none), ``p0`` the win model's probability for the row
    (a function of the context; it shapes the per-account effect), ``segment`` a label per row.
    """

    def __init__(
        self,
        *,
        control: str = CONTROL,
        min_propensity: float = 0.01,
        overlap: tuple[float, float] = (0.02, 0.98),
        folds: int = 3,
        lightgbm: dict[str, Any] | None = None,
        seed: int = 0,
        n_jobs: int = 1,
        alpha: float = 0.05,
    ) -> None:
        self.control = control
        self.min_propensity = min_propensity
        self.overlap = overlap
        self.folds = folds
        self.lightgbm = lightgbm or {}
        self.seed = seed
        self.n_jobs = n_jobs
        self.alpha = alpha

    def _lgbm(self) -> lgb.LGBMClassifier:
        return lgb.LGBMClassifier(
            **self.lightgbm,
            random_state=self.seed,
            n_jobs=self.n_jobs,
            deterministic=True,
            force_row_wise=True,
            verbose=-1,
        )

    # ---- encoding ---------------------------------------------------------------------------

    def _encode(self, context: pd.DataFrame) -> np.ndarray:
        frame = context[self.context_columns_]
        out = np.empty(frame.shape, dtype=float)
        for j, column in enumerate(self.context_columns_):
            values = frame[column]
            if column in self.categories_:
                codes = pd.Categorical(values, categories=self.categories_[column]).codes
                out[:, j] = np.where(codes < 0, np.nan, codes)
            else:
                out[:, j] = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        return out

    def _final_input(
        self, p0: np.ndarray, segment: np.ndarray, modifiers: pd.DataFrame | None
    ) -> np.ndarray:
        p0 = np.clip(np.asarray(p0, dtype=float), 1e-6, 1 - 1e-6)
        g = p0 * (1 - p0)
        seg = np.asarray(segment).astype(str)[:, None] == np.asarray(self.segments_)[None, :]
        parts = [g[:, None], seg.astype(float)]
        if self.modifier_columns_:
            assert modifiers is not None
            values = modifiers[self.modifier_columns_].to_numpy(dtype=float)
            values = np.where(np.isnan(values), self.modifier_center_, values)
            parts.append((values - self.modifier_center_) / self.modifier_scale_)
        return np.column_stack(parts)

    # ---- fitting ----------------------------------------------------------------------------

    def fit(
        self,
        context: pd.DataFrame,
        treatment: np.ndarray,
        renewed: np.ndarray,
        groups: np.ndarray,
        p0: np.ndarray,
        segment: np.ndarray,
        modifiers: pd.DataFrame | None = None,
    ) -> PlayEffects:
        """Learn each kind's effect on renewal from the decision rows of the play log.

        Args:
            context: the decision context (the win model's features) of each row.
            treatment: the kind played in the row's decision period, or the control label.
            renewed: 1 when the contract renewed.
            groups: the account of each row (cross-fitting folds never split an account).
            p0: the win model's probability for the row.
            segment: the row's segment.
            modifiers: the features the effect's log-odds shift varies with, if any.

        Returns:
            The fitted estimator; ``skipped_`` holds the kinds left out and why.

        Raises:
            ModelInputError: the log holds no play, or no kind's effect can be estimated.
        """
        treatment = np.asarray(treatment).astype(str)
        others = [np.asarray(a) for a in (renewed, groups, p0, segment)]
        self.skipped_: dict[str, str] = {}
        while True:  # at most once per kind: each round leaves out at least one
            rows = ~np.isin(treatment, list(self.skipped_))
            failed = self._fit_rows(
                context[rows],
                treatment[rows],
                *(a[rows] for a in others),
                None if modifiers is None else modifiers[rows],
            )
            if not failed:
                return self
            self.skipped_ |= failed

    def _fit_rows(
        self,
        context: pd.DataFrame,
        treatment: np.ndarray,
        renewed: np.ndarray,
        groups: np.ndarray,
        p0: np.ndarray,
        segment: np.ndarray,
        modifiers: pd.DataFrame | None,
    ) -> dict[str, str]:
        """Fit on these rows; the kinds whose average cannot be computed, and why (empty when
        every kind was, and the fit is complete)."""
        kinds = sorted(set(treatment) - {self.control})
        if not kinds:
            reasons: dict[str, list[str]] = {}
            for kind, reason in self.skipped_.items():
                reasons.setdefault(reason, []).append(kind)
            why = "; ".join(f"{', '.join(k)}: {reason}" for reason, k in reasons.items())
            raise ModelInputError(
                f"no play's effect can be estimated from the log ({why})"
                if why
                else "no play in the log: nothing to estimate"
            )
        self.kinds_ = kinds
        self.context_columns_ = list(context.columns)
        self.categories_ = {
            c: list(context[c].cat.categories)
            for c in context.columns
            if isinstance(context[c].dtype, pd.CategoricalDtype)
        }
        self.segments_ = sorted(pd.unique(np.asarray(segment).astype(str)))
        self.modifier_columns_ = [] if modifiers is None else list(modifiers.columns)
        if self.modifier_columns_:
            values = modifiers[self.modifier_columns_].to_numpy(dtype=float)
            self.modifier_center_ = np.nanmedian(values, axis=0)
            self.modifier_scale_ = np.where(
                (s := np.nanstd(values, axis=0)) > 0, s, 1.0
            )  # constant columns stay at zero
        self.layout_ = Layout(len(self.segments_), len(self.modifier_columns_))
        W = self._encode(context)
        X = self._final_input(p0, segment, modifiers)
        y = np.asarray(renewed, dtype=int)
        self.counts_ = pd.Series(treatment).value_counts().reindex([self.control, *kinds])

        learner = DRLearner(
            model_propensity=self._lgbm(),
            model_regression=self._lgbm(),
            model_final=StatsModelsLinearRegression(fit_intercept=False, cov_type="HC1"),
            featurizer=FunctionTransformer(_constant),
            discrete_outcome=True,
            min_propensity=self.min_propensity,
            categories=[self.control, *kinds],
            cv=self.folds,
            random_state=self.seed,
            allow_missing=True,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            learner.fit(y, treatment, X=X, W=W, groups=groups, cache_values=True)
            average, failed = self._averages(learner, X)
            if failed:
                return failed
            self.average_ = average
            learner.featurizer = FunctionTransformer(self.layout_.segment_design)
            learner.refit_final()
            self.by_segment_ = self._segment_averages(learner, X)
            if self.modifier_columns_:
                learner.featurizer = FunctionTransformer(self.layout_.slope_design)
                learner.refit_final()
        self.mean_slope_ = float(X[:, 0].mean())
        learner._cached_values = None  # the training frames need not travel with the model
        self.learner_ = learner
        self.propensity_ = self._propensity(X, W)
        self.overlap_ = self._overlap(treatment)
        self.s_learner_ = self._fit_s_learner(p0, segment, treatment, y)
        self.s_average_ = pd.Series(
            self.s_learner_effects(p0, segment).mean(axis=0), index=kinds, name="s_learner"
        )
        return {}

    def _averages(self, learner: DRLearner, X: np.ndarray) -> tuple[pd.DataFrame, dict[str, str]]:
        """Each kind's AIPW average with its interval and robustness value; and the kinds for
        which they cannot be computed on this log, with the reason in words."""
        rows, failed = [], {}
        for kind in self.kinds_:
            try:
                inference = learner.ate_inference(X[:1], T0=self.control, T1=kind)
                lo, hi = inference.conf_int_mean(alpha=self.alpha)
                # how strong an unlogged confounder would have to be (share of the residual
                # variation of both play and outcome it explains) to move the point to zero
                robustness = float(learner.robustness_value(T=kind, interval_type="theta"))
            except (ValueError, np.linalg.LinAlgError) as exc:
                failed[kind] = _not_estimable(exc)
                continue
            row = {
                "kind": kind,
                "ate": float(inference.mean_point),
                "lo": float(np.ravel(lo)[0]),
                "hi": float(np.ravel(hi)[0]),
                "se": float(np.ravel(inference.stderr_mean)[0]),
                "robustness": robustness,
            }
            if not np.isfinite([row["ate"], row["lo"], row["hi"], row["se"]]).all():
                failed[kind] = "its average effect or its interval is not a finite number"
                continue
            rows.append(row)
        return pd.DataFrame(rows, columns=[*AVERAGE_COLUMNS]).set_index("kind"), failed

    def _segment_averages(self, learner: DRLearner, X: np.ndarray) -> pd.DataFrame:
        rows = []
        for j, segment in enumerate(self.segments_):
            one = np.zeros((1, X.shape[1]))
            one[0, 1 + j] = 1.0
            for kind in self.kinds_:
                inference = learner.effect_inference(one, T0=self.control, T1=kind)
                lo, hi = inference.conf_int(alpha=self.alpha)
                rows.append(
                    {
                        "segment": segment,
                        "kind": kind,
                        "ate": float(np.ravel(inference.point_estimate)[0]),
                        "lo": float(np.ravel(lo)[0]),
                        "hi": float(np.ravel(hi)[0]),
                    }
                )
        return pd.DataFrame(rows)

    def _overlap(self, treatment: np.ndarray) -> pd.DataFrame:
        lo, hi = self.overlap
        e = self.propensity_
        rows = {}
        for j, kind in enumerate(self.kinds_):
            p = e[:, j + 1]
            treated = treatment == kind
            rows[kind] = {
                "treated": int(treated.sum()),
                "propensity_treated_median": float(np.median(p[treated])),
                "propensity_control_median": float(np.median(p[~treated])),
                "share_outside_overlap": float(np.mean((p < lo) | (p > hi))),
                "share_clipped": float(np.mean(p < self.min_propensity)),
            }
        return pd.DataFrame(rows).T

    def _fit_s_learner(self, p0: np.ndarray, segment: np.ndarray, treatment: np.ndarray,
                       y: np.ndarray) -> LogisticRegression:  # fmt: skip
        return LogisticRegression(C=1.0, max_iter=500).fit(
            self._s_design(p0, segment, treatment), y
        )

    def _s_design(self, p0: np.ndarray, segment: np.ndarray, treatment: np.ndarray) -> np.ndarray:
        z = logit(np.clip(np.asarray(p0, dtype=float), 1e-6, 1 - 1e-6))
        seg = np.asarray(segment).astype(str)[:, None] == np.asarray(self.segments_)[None, :]
        play = np.asarray(treatment).astype(str)[:, None] == np.asarray(self.kinds_)[None, :]
        return np.column_stack([z, seg, play]).astype(float)

    # ---- prediction -------------------------------------------------------------------------

    def propensity(
        self,
        context: pd.DataFrame,
        p0: np.ndarray,
        segment: np.ndarray,
        modifiers: pd.DataFrame | None = None,
    ) -> np.ndarray:
        """(n, 1 + kinds): probability of no play and of each kind, averaged over the folds."""
        return self._propensity(self._final_input(p0, segment, modifiers), self._encode(context))

    def _propensity(self, X: np.ndarray, W: np.ndarray) -> np.ndarray:
        models = [m for fold in self.learner_.models_propensity for m in fold]
        XW = np.hstack([X, W])  # econml's nuisance input: X then W
        return np.mean([m.predict_proba(XW) for m in models], axis=0)

    def effects(
        self,
        p0: np.ndarray,
        segment: np.ndarray,
        modifiers: pd.DataFrame | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-account effect on renewal probability, (n, kinds) point, lower, upper."""
        X = self._final_input(p0, segment, modifiers)
        if not self.modifier_columns_:
            # one log-odds shift per kind: the average effect spread by each account's slope
            scale = X[:, :1] / self.mean_slope_
            average = self.average_.loc[self.kinds_]
            return (
                scale * average["ate"].to_numpy(),
                scale * average["lo"].to_numpy(),
                scale * average["hi"].to_numpy(),
            )
        point, lo, hi = [], [], []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for kind in self.kinds_:
                inference = self.learner_.effect_inference(X, T0=self.control, T1=kind)
                low, high = inference.conf_int(alpha=self.alpha)
                point.append(np.ravel(inference.point_estimate))
                lo.append(np.ravel(low))
                hi.append(np.ravel(high))
        return np.column_stack(point), np.column_stack(lo), np.column_stack(hi)

    def extrapolated(self, propensity: np.ndarray) -> np.ndarray:
        """(n, kinds) bool: propensity of that kind (``propensity()``) outside ``overlap``."""
        lo, hi = self.overlap
        e = propensity[:, 1:]
        return (e < lo) | (e > hi)

    def s_learner_effects(self, p0: np.ndarray, segment: np.ndarray) -> np.ndarray:
        """(n, kinds): the S-learner's P(renew | context, kind) − P(renew | context, none).

        A logistic regression of renewal on the win model's log-odds (the context, summarised),
        the segment and the play: regression adjustment only, a check beside the DR estimates.
        """
        n = len(p0)
        base = self.s_learner_.predict_proba(self._s_design(p0, segment, np.full(n, self.control)))[
            :, 1
        ]
        out = np.empty((n, len(self.kinds_)))
        for j, kind in enumerate(self.kinds_):
            on = self.s_learner_.predict_proba(self._s_design(p0, segment, np.full(n, kind)))
            out[:, j] = on[:, 1] - base
        return out


PERIODS = {
    "weekly": pd.DateOffset(weeks=1),
    "monthly": pd.DateOffset(months=1),
    "quarterly": pd.DateOffset(months=3),
}


def decision_table(
    snapshots: pd.DataFrame,
    plays: pd.DataFrame,
    frequency: str,
    history: list[str],
    control: str = CONTROL,
) -> pd.DataFrame:
    """Pair each snapshot with the play logged in the decision period just before it.

    ``snapshots``: one row per (account_id, as_of) with features; ``plays``: account_id, ts,
    type. A snapshot at ``as_of`` is treated with the first play in ``[as_of − period, as_of)``
    (``control`` when none): it holds what the CSM saw while deciding, and the play's effect is
    assumed not to show in the signals before the period ends (the outcome is the contract's
    renewal, months later). The ``history`` columns (those that count past plays, the play
    itself included) are taken from the snapshot one period earlier, so no input records the
    play being evaluated; where that snapshot does not exist they are missing. Pass
    ``history=[]`` to keep the snapshot's own columns and rebuild them as of ``decided_at``
    instead (what :func:`pipeline.effects.history_at_decision` does).

    Returns the snapshots with ``treatment``, ``decided_at`` (the period's start) and the
    history columns replaced.
    """
    if frequency not in PERIODS:
        raise ValueError(f"frequency {frequency!r}: expected one of {sorted(PERIODS)}")
    period = PERIODS[frequency]
    as_of = pd.to_datetime(snapshots["as_of"])
    table = snapshots.assign(as_of=as_of, decided_at=as_of - period)
    log = plays[["account_id", "ts", "type"]].dropna(subset=["account_id", "ts", "type"])
    ts = pd.to_datetime(log["ts"])
    log = log.assign(ts=ts.dt.tz_convert(None) if ts.dt.tz is not None else ts)  # UTC, naive
    # each play to the snapshot whose decision period holds it: the first as_of after ts
    dates = np.sort(table["as_of"].unique())
    nxt = np.searchsorted(dates, log["ts"].to_numpy(), side="right")
    inside = nxt < len(dates)
    log = log[inside].assign(as_of=dates[nxt[inside]])
    log = log[log["ts"] >= log["as_of"] - period].sort_values("ts", kind="stable")
    first = log.drop_duplicates(["account_id", "as_of"])[["account_id", "as_of", "type"]]
    keys = table[["account_id", "as_of"]]
    merged = keys.merge(first, on=["account_id", "as_of"], how="left", validate="one_to_one")
    table["treatment"] = merged["type"].fillna(control).astype(str).to_numpy()
    if history:
        before = keys.assign(as_of=keys["as_of"] - period).merge(
            table[["account_id", "as_of", *history]],
            on=["account_id", "as_of"],
            how="left",
            validate="one_to_one",
        )
        for column in history:
            table[column] = before[column].to_numpy()
    return table


def context_frame(table: pd.DataFrame, catalog: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """The decision context the effect model reads: the model's features, categoricals typed."""
    categorical = set(catalog.loc[catalog["categorical"].astype(bool), "name"])
    return table[names].assign(
        **{c: table[c].astype("category") for c in names if c in categorical}
    )


def segments(table: pd.DataFrame) -> np.ndarray:
    """Each row's segment as text ("(missing)" where empty), or "all" without a segment column."""
    if "segment" in table.columns:
        return table["segment"].astype("string").fillna("(missing)").to_numpy(dtype=str)
    return np.full(len(table), "all")
