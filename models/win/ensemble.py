"""The win-probability ensemble: diverse members stacked in log-odds space, then calibrated.

Members (each with exact per-feature contributions in its own log-odds):
- ``lightgbm``: gradient-boosted trees on the readable features, categoricals native;
  contributions by exact TreeSHAP (:mod:`models.explain.treeshap`, ``pred_contrib``'s values).
- ``linear``: L2 logistic regression on median-imputed, signed-log, standardised features with
  missing-value indicators and one-hot categoricals; contributions coefficient × (value − mean).
- ``additive``: boosted stumps (one feature per tree), a learned scorecard with nonlinear shapes
  and no interactions; contributions by TreeSHAP, exact because the model is additive.

The stack is ``z = b + Σ_k w_k · z_k`` with non-negative weights fitted on out-of-fold log-odds
(folds grouped by account), so an account's contributions are ``Σ_k w_k · φ_k`` and add up to
``z`` exactly. On small data those weights are noise, so the stack is kept as it is only when
its own out-of-fold log loss (the weights cross-fitted too) beats the best single member's
beyond noise (a paired bootstrap over accounts); when the member beats it, the member alone
(weights ``(0, …, w, …, 0)``); in between, the weights shrunk toward the member's
(:func:`choose_stacking`). A calibrator (sigmoid, beta, isotonic or Venn-ABERS, chosen by
held-out log loss, out of time when the rows carry dates) then maps ``z`` to the win
probability; Venn-ABERS also gives a probability interval.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit, log_expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.preprocessing import OneHotEncoder

from models.config import TrainConfig
from models.errors import ModelInputError
from models.explain.treeshap import current, tree_contributions, tree_tables
from models.win.calibration import Calibrator, Method, choose_calibration
from models.win.stumps import stump_contributions, stump_tables

MEMBERS = ("lightgbm", "linear", "additive")
MISSING = "(missing)"
STACKINGS = ("auto", "stack")
GUARD_REPLICATES = 1000  # resamples of accounts behind the stack's gain interval


class Member(Protocol):
    """What the stack needs of a member: fit, log-odds, and exact contributions to them."""

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Member:
        """Learn from the features ``X`` and labels ``y`` (1 = renewed); return the member."""

    def decision(self, X: pd.DataFrame) -> np.ndarray:
        """The member's log-odds of renewal per row."""

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        """(rows, features + 1): each feature's share of :meth:`decision`, the base last."""


class TreeMember:
    """LightGBM in log-odds; ``additive=True`` restricts it to stumps."""

    def __init__(
        self, params: dict[str, Any], seed: int, additive: bool = False, n_jobs: int = 1
    ) -> None:
        self.params = params
        self.seed = seed
        self.additive = additive
        self.n_jobs = n_jobs

    def settings(self) -> dict[str, Any]:
        """LightGBM's settings for this member, in the scikit-learn wrapper's names (which
        ``lgb.train`` also accepts): the trees as the same settings grow them either way.

        Deterministic, so the trees are the same at any thread count. Histograms are built a
        feature at a time (``force_col_wise``): the same trees as row-wise to the last bit,
        and faster on these tables (1.0 s instead of 1.9 s for 300 trees of the tuned member
        on 33,600 rows × 150 features, which samples 40 % of the features per tree). Features
        too sparse to split under ``min_child_samples`` stay in the dataset unsplit
        (``feature_pre_filter`` off; a tree sampling features then draws from them too), so a
        dataset binned once serves every setting tuning tries, and a tuning trial grows the
        trees a fit with its settings grows.
        """
        shape = {"max_depth": 1, "num_leaves": 2} if self.additive else {}
        return {
            **self.params,
            **shape,
            "subsample_freq": 1 if self.params.get("subsample", 1.0) < 1 else 0,
            "random_state": self.seed,
            "n_jobs": self.n_jobs,
            "deterministic": True,
            "force_col_wise": True,
            "feature_pre_filter": False,
            "verbose": -1,
        }

    def boost(
        self, fit: lgb.Dataset, held: lgb.Dataset | None = None, stopping_rounds: int = 50
    ) -> lgb.Booster:
        """Grow the member's trees on a LightGBM dataset built beforehand (tuning reuses one
        per fold across trials instead of binning the rows anew for each), stopping as
        :meth:`fit` does on ``held``; the same trees as :meth:`fit` on the same rows."""
        settings = self.settings()
        rounds = settings.pop("n_estimators", 100)
        callbacks, valid = [], []
        if held is not None:
            callbacks = [lgb.early_stopping(stopping_rounds, verbose=False)]
            valid = [held]
        return lgb.train(
            {**settings, "objective": "binary", "metric": "binary_logloss"},
            fit, num_boost_round=rounds, valid_sets=valid, callbacks=callbacks,
        )  # fmt: skip

    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        stop_on: tuple[pd.DataFrame, np.ndarray] | None = None,
        stopping_rounds: int = 50,
    ) -> TreeMember:
        """Fit; with ``stop_on`` (held-out rows and labels), stop adding trees once its log
        loss has not improved for ``stopping_rounds`` (``best_iteration_`` tells how many)."""
        self.model_ = lgb.LGBMClassifier(**self.settings())
        stopping = {}
        if stop_on is not None:
            stopping = {
                "eval_X": (stop_on[0],),
                "eval_y": (stop_on[1],),
                "eval_metric": "binary_logloss",
                "callbacks": [lgb.early_stopping(stopping_rounds, verbose=False)],
            }
        self.model_.fit(X, y, **stopping)
        self.stumps_ = stump_tables(self.model_.booster_) if self.additive else None
        self.__dict__.pop("shap_tables_", None)  # a refit's trees need their own tables
        return self

    def decision(self, X: pd.DataFrame) -> np.ndarray:
        """The trees' raw score: log-odds of renewal per row (stumps: the sum of their exact
        contributions, several times faster than LightGBM's predict and equal to rounding)."""
        if getattr(self, "stumps_", None) is not None:
            return stump_contributions(self.stumps_, X).sum(axis=1)
        return np.asarray(self.model_.predict(X, raw_score=True), dtype=float)

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        """(rows, features + 1): TreeSHAP per feature, the expected log-odds last.

        Stumps take the exact closed form of :mod:`models.win.stumps` (~30× faster than
        ``pred_contrib``), deeper trees the precomputed tables of :mod:`models.explain.treeshap`
        (about 10× faster on trees of a few splits); both give ``pred_contrib``'s values to
        rounding. A model too deep for the tables falls back to ``pred_contrib`` itself.
        """
        if getattr(self, "stumps_", None) is not None:
            return stump_contributions(self.stumps_, X)
        # built on first use and kept when pickled; rebuilt when pickled in an older layout
        if not hasattr(self, "shap_tables_") or not current(self.shap_tables_):
            self.shap_tables_ = tree_tables(self.model_.booster_)
        if self.shap_tables_ is not None:
            return tree_contributions(self.shap_tables_, X, self.n_jobs)
        # the booster itself: the scikit-learn wrapper re-validates the frame on every call
        return np.asarray(self.model_.booster_.predict(X, pred_contrib=True), dtype=float)


class LinearMember:
    """Regularised logistic regression on normalised features, exact linear contributions."""

    def __init__(
        self, C: float, max_iter: int, seed: int, interact_with: str | None = None
    ) -> None:
        self.C = C
        self.max_iter = max_iter
        self.seed = seed
        self.interact_with = interact_with

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> LinearMember:
        """Learn the imputation, scaling and one-hot encoding of ``X``, then the regression."""
        self.numeric_ = [c for c in X.columns if not isinstance(X[c].dtype, pd.CategoricalDtype)]
        self.categorical_ = [c for c in X.columns if c not in self.numeric_]
        self.columns_ = list(X.columns)
        numeric = X[self.numeric_].to_numpy(dtype=float)
        self.imputer_ = SimpleImputer(
            strategy="median", add_indicator=True, keep_empty_features=True
        )
        self.imputer_.fit(numeric)
        # every signal × how far the renewal is (0–1 of the training range), when that column
        # is among the features: how much a signal counts depends on the time left
        self.interact_ = (
            self.numeric_.index(self.interact_with) if self.interact_with in self.numeric_ else None
        )
        if self.interact_ is not None:
            top = float(np.nanmax(np.abs(numeric[:, self.interact_]), initial=0.0))
            self.interact_scale_ = top if top > 0 else 1.0
        self.onehot_ = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        if self.categorical_:  # an all-numeric table has nothing to encode
            self.onehot_.fit(self._labels(X))
        design = self._design(X)
        self.mean_ = design.mean(axis=0)
        self.scale_ = design.std(axis=0)
        self.scale_[self.scale_ == 0] = 1.0
        self.model_ = LogisticRegression(C=self.C, max_iter=self.max_iter)
        self.model_.fit((design - self.mean_) / self.scale_, y)
        indicators = self.imputer_.indicator_.features_ if self.imputer_.indicator_ else []
        owner = [self.columns_.index(c) for c in self.numeric_]
        owner += [self.columns_.index(self.numeric_[i]) for i in indicators]
        owner += [self.columns_.index(self.numeric_[i]) for i in self._interacted()]
        categories = self.onehot_.categories_ if self.categorical_ else []
        for column, cats in zip(self.categorical_, categories, strict=True):
            owner += [self.columns_.index(column)] * len(cats)
        self.owner_ = np.asarray(owner)
        return self

    def _interacted(self) -> list[int]:
        """Numeric columns multiplied by the horizon (each owns its product's contribution)."""
        at = getattr(self, "interact_", None)
        return [] if at is None else [i for i in range(len(self.numeric_)) if i != at]

    def _labels(self, X: pd.DataFrame) -> np.ndarray:
        if not self.categorical_:
            return np.empty((len(X), 0), dtype=object)
        return X[self.categorical_].astype(object).where(X[self.categorical_].notna(), MISSING)

    def _design(self, X: pd.DataFrame) -> np.ndarray:
        imputed = self.imputer_.transform(X[self.numeric_].to_numpy(dtype=float))
        width = len(self.numeric_)
        if hasattr(self, "quantiles_"):  # a version trained before the log transform
            scaled = self.quantiles_.transform(imputed[:, :width])
        else:
            scaled = signed_log1p(imputed[:, :width])
        parts = [scaled, imputed[:, width:]]
        if getattr(self, "interact_", None) is not None:
            h = np.clip(imputed[:, self.interact_] / self.interact_scale_, 0.0, 1.0)
            parts.append(scaled[:, self._interacted()] * h[:, None])
        if self.categorical_:
            parts.append(self.onehot_.transform(self._labels(X)))
        return np.hstack(parts)

    def decision(self, X: pd.DataFrame) -> np.ndarray:
        """The regression's log-odds of renewal per row: its contributions' sum."""
        return self.contributions(X).sum(axis=1)

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        """(rows, features + 1): coefficient × (value − mean) per feature, intercept last.

        Computed a feature at a time, without the design matrix: a numeric feature's share is
        its signed-log value's term, its missing indicator's and its horizon product's; a
        category's is its one-hot coefficient less the one-hots' mean term. Equal to the design
        matrix's product to float rounding, in a fraction of the time and memory.
        """
        if hasattr(self, "quantiles_"):  # a version trained before the log transform
            return self._design_contributions(X)
        coef = self.model_.coef_[0] / self.scale_
        centre = self.mean_ * coef  # each design column's mean term
        width = at = len(self.numeric_)
        out = np.zeros((len(X), len(self.columns_) + 1))
        if width:
            # a few arrays of (rows, numeric features), reused in place: scoring's memory
            values = X[self.numeric_].to_numpy(dtype=float)
            if not values.flags.writeable:
                values = values.copy()
            missing = np.isnan(values)
            np.copyto(values, self.imputer_.statistics_, where=missing)
            h = None
            if self._interacted():  # the horizon, from the imputed values
                h = np.clip(values[:, self.interact_] / self.interact_scale_, 0.0, 1.0)
            scaled = values  # signed log, in place
            magnitude = np.log1p(np.abs(values))
            np.copysign(magnitude, values, out=scaled)
            numeric = magnitude  # reused: the values' own terms
            np.multiply(scaled, coef[:width], out=numeric)
            numeric -= centre[:width]
            term = np.empty_like(numeric)
            if self.imputer_.indicator_:
                flagged = self.imputer_.indicator_.features_
                end = at + len(flagged)
                np.multiply(missing, _placed(coef[at:end], flagged, width), out=term)
                term -= _placed(centre[at:end], flagged, width)
                numeric += term
                at = end
            if h is not None:
                interacted = self._interacted()
                end = at + len(interacted)
                np.multiply(scaled, h[:, None], out=term)
                term *= _placed(coef[at:end], interacted, width)
                term -= _placed(centre[at:end], interacted, width)
                numeric += term
                at = end
            del term
            out[:, [self.columns_.index(c) for c in self.numeric_]] = numeric
        if self.categorical_:
            labels = np.asarray(self._labels(X))
            for k, (column, cats) in enumerate(zip(self.categorical_, self.onehot_.categories_,
                                                   strict=True)):  # fmt: skip
                end = at + len(cats)
                # one-hot: the row's category's coefficient (none for an unseen one), less the
                # mean term of every one-hot of the feature
                terms = np.append(coef[at:end], 0.0)
                codes = pd.Index(cats).get_indexer(labels[:, k])  # −1: unseen
                out[:, self.columns_.index(column)] = terms[codes] - centre[at:end].sum()
                at = end
        out[:, -1] = self.model_.intercept_[0]
        return out

    def _design_contributions(self, X: pd.DataFrame) -> np.ndarray:
        coef = self.model_.coef_[0] / self.scale_
        per_column = (self._design(X) - self.mean_) * coef
        # each design column (values, missing indicators, one-hots) belongs to one feature
        owner = np.zeros((per_column.shape[1], len(self.columns_) + 1))
        owner[np.arange(per_column.shape[1]), self.owner_] = 1.0
        out = per_column @ owner
        out[:, -1] = self.model_.intercept_[0]
        return out


def signed_log1p(values: np.ndarray) -> np.ndarray:
    """``sign(x) · log(1 + |x|)``: tames the long tails of counts, amounts and days, keeps order
    and sign. Against quantile-normal scores on the default world it gave the linear member a
    higher out-of-time AUC (0.801 vs 0.797) at a quarter of the scoring time."""
    return np.sign(values) * np.log1p(np.abs(values))


class HealthEnsemble(ClassifierMixin, BaseEstimator):
    """Stacked, calibrated renewal classifier (scikit-learn API).

    ``fit(X, y, groups=account_ids, times=as_of_dates)``: X holds the readable features
    (categoricals as pandas ``category``), y is 1 = renewed. Learned: ``members_``,
    ``weights_``, ``intercept_``, ``calibrator_``, ``calibration_choice_`` (which method, on
    what evidence: :class:`~models.win.calibration.CalibrationChoice`), ``oof_proba_``
    (out-of-fold calibrated probabilities, for CV metrics), ``member_names_`` (the members
    kept: one whose stacking weight is below ``min_member_weight`` of the total is dropped and
    the rest restacked, since it would cost
    its whole explanation time for next to no signal) and ``dropped_members_``.

    ``stacking="auto"`` keeps the stack only when its out-of-fold log loss beats the best single
    member's with a 95 % interval over accounts above 0, takes that member alone when the
    interval is below 0, and otherwise moves the weights toward the member's (on small data the
    stacking weights are noise): :func:`choose_stacking`. ``"stack"`` always stacks. Either way
    ``stack_mode_`` (``"stack"``, ``"blend"`` or ``"single"``), ``stack_reason_`` (one line to
    log) and ``stack_choice_`` (the figures: :class:`StackChoice`) say what was done and why.
    """

    def __init__(
        self,
        members: tuple[str, ...] = MEMBERS,
        lightgbm: dict[str, Any] | None = None,
        linear: dict[str, Any] | None = None,
        additive: dict[str, Any] | None = None,
        cv_folds: int = 5,
        calibration: str = "auto",
        seed: int = 42,
        n_jobs: int = 1,
        min_member_weight: float = 0.01,
        stacking: str = "auto",
    ) -> None:
        self.members = members
        self.lightgbm = lightgbm
        self.linear = linear
        self.additive = additive
        self.cv_folds = cv_folds
        self.calibration = calibration
        self.seed = seed
        self.n_jobs = n_jobs
        self.min_member_weight = min_member_weight
        self.stacking = stacking

    def _make(self, name: str, n_jobs: int | None = None) -> Member:
        threads = self.n_jobs if n_jobs is None else n_jobs
        if name == "lightgbm":
            return TreeMember(dict(self.lightgbm or {}), self.seed, n_jobs=threads)
        if name == "linear":
            return LinearMember(
                **{"C": 0.05, "max_iter": 500, **(self.linear or {})}, seed=self.seed
            )
        if name == "additive":
            return TreeMember(dict(self.additive or {}), self.seed, True, threads)
        raise ValueError(f"unknown ensemble member {name!r}; one of {MEMBERS}")

    def _fit_many(
        self, X: pd.DataFrame, y: np.ndarray, jobs: list[tuple[str, np.ndarray | None]]
    ) -> list[Member]:
        """Fit each (member, rows) job on those rows of ``X`` (None: all of them), ``n_jobs``
        jobs at a time on threads, each slicing its rows when it starts.

        Each job gets ``n_jobs // workers`` threads of its own: on two cores two one-thread
        fits keep both busy where one two-thread fit leaves one idle through its
        single-threaded parts (LightGBM's binning, the linear member's design). LightGBM gives
        the same trees at any thread count, so the result does not depend on the split. Every
        fitted member is left with ``n_jobs`` threads for scoring and explaining.
        """
        workers = max(1, min(self.n_jobs, len(jobs)))
        threads = max(1, self.n_jobs // workers)

        def fit(job: tuple[str, np.ndarray | None]) -> Member:
            name, rows = job
            data, labels = (X, y) if rows is None else (X.iloc[rows], y[rows])
            member = self._make(name, threads).fit(data, labels)
            if isinstance(member, TreeMember) and threads != self.n_jobs:
                member.n_jobs = self.n_jobs
                member.model_.set_params(n_jobs=self.n_jobs)
            return member

        if workers == 1:
            return [fit(job) for job in jobs]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(fit, jobs))

    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray | pd.Series,
        groups: np.ndarray | pd.Series | None = None,
        times: np.ndarray | pd.Series | None = None,
    ) -> HealthEnsemble:
        """Fit the members out of fold, stack and calibrate them, then refit the kept ones on all.

        Args:
            X: The readable features, categoricals as pandas ``category``.
            y: 1 = renewed, 0 = churned.
            groups: Account ids, so no account is on both sides of a fold; each row its own
                group when None.
            times: Each row's as-of date. When given (three dates or more), the calibration
                method is chosen out of time (fitted on earlier dates, scored on later ones);
                otherwise out of fold.

        Returns:
            The fitted ensemble.

        Raises:
            ModelInputError: ``X`` is not a frame or has text columns that are not
                ``category``; ``y`` is not one 0/1 label per row, or holds one class only.
            ValueError: ``stacking`` is not one of ``STACKINGS``.
        """
        if self.stacking not in STACKINGS:
            raise ValueError(f"unknown stacking {self.stacking!r}; one of {STACKINGS}")
        X, y = _check_frame(X), _check_label(y, len(X))
        groups = np.arange(len(X)) if groups is None else np.asarray(groups)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        self.classes_ = np.array([0, 1])
        self.categories_ = {
            c: list(X[c].cat.categories)
            for c in X.columns
            if isinstance(X[c].dtype, pd.CategoricalDtype)
        }
        folds = StratifiedGroupKFold(n_splits=self.cv_folds, shuffle=True, random_state=self.seed)
        splits = list(folds.split(X, y, groups))
        oof = np.zeros((len(X), len(self.members)))
        fitted = iter(self._fit_many(X, y, [(n, a) for a, _ in splits for n in self.members]))
        for _, held_rows in splits:
            held = X.iloc[held_rows]
            for k in range(len(self.members)):
                oof[held_rows, k] = next(fitted).decision(held)
        self.oof_member_scores_ = oof
        intercept, weights = _stack(oof, y)
        # a member the stack barely uses costs its full explanation time for nothing: drop it
        kept = self._kept(weights)
        if not kept.all():
            intercept, weights = _stack(oof[:, kept], y)
            weights = _spread(weights, kept)
        choice = choose_stacking(oof, y, groups, splits, kept, self.members, seed=self.seed)
        guarded = self.stacking == "auto" or kept.sum() == 1
        if guarded and choice.mode != "stack":
            # log-odds are linear in the weights: moving the weights is averaging the two models
            alone = self.members.index(choice.member)
            b, w = _stack(oof[:, [alone]], y)
            lam = choice.shrinkage
            intercept = (1 - lam) * intercept + lam * b
            weights = (1 - lam) * weights + lam * _spread(w, np.arange(len(self.members)) == alone)
            kept = (weights > 0) | (self.min_member_weight == 0)
            if not kept.any():  # no member carries signal: keep the best, at weight 0
                kept = np.arange(len(self.members)) == alone
        self.stack_choice_ = choice
        self.stack_mode_ = choice.mode if guarded else "stack"
        self.stack_reason_ = (
            choice.reason
            if guarded or choice.mode == "stack"
            else f"stacked as stacking is 'stack' (auto: {choice.mode} toward {choice.member}, "
            f"gain {choice.gain:+.4f}, 95 % interval {choice.low:+.4f} to {choice.high:+.4f})"
        )
        self.member_names_ = tuple(n for n, k in zip(self.members, kept, strict=True) if k)
        self.dropped_members_ = tuple(n for n, k in zip(self.members, kept, strict=True) if not k)
        self.intercept_, self.weights_ = intercept, weights[kept]
        stacked = self.intercept_ + oof[:, kept] @ self.weights_
        choice, oof_proba = choose_calibration(stacked, y, groups, self.cv_folds, times)
        if self.calibration == "auto":
            method, self.oof_proba_ = choice.method, oof_proba
        else:
            method = self.calibration
            self.oof_proba_ = _cross_fit(method, stacked, y, splits)
        self.calibration_choice_ = choice
        self.calibration_losses_ = choice.losses
        self.calibration_method_: Method = method
        self.calibrator_ = Calibrator(method).fit(stacked, y)
        self.members_ = self._fit_many(X, y, [(name, None) for name in self.member_names_])
        return self

    def _kept(self, weights: np.ndarray) -> np.ndarray:
        """The members whose weight is at least ``min_member_weight`` of the total."""
        kept = weights >= self.min_member_weight * max(weights.sum(), 1e-12)
        return kept if kept.any() else weights == weights.max()

    def refit_members(self, X: pd.DataFrame, y: np.ndarray | pd.Series) -> HealthEnsemble:
        """Refit the members on more data (e.g. every labelled snapshot), keeping the stacking
        weights and the calibrator learned out of fold: the model to deploy after evaluation."""
        X, y = _check_frame(X), _check_label(y, len(X))
        X = X[list(self.feature_names_in_)]
        self.categories_ = {
            c: list(X[c].cat.categories)
            for c in X.columns
            if isinstance(X[c].dtype, pd.CategoricalDtype)
        }
        self.members_ = self._fit_many(X, y, [(name, None) for name in self.member_names_])
        return self

    def align(self, X: pd.DataFrame) -> pd.DataFrame:
        """The training columns in order; text recoded to the training categories (unseen
        categories become missing)."""
        if not isinstance(X, pd.DataFrame):
            raise ModelInputError(
                f"expected a pandas DataFrame of features, got {type(X).__name__}"
            )
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise ValueError(f"features missing from the frame: {missing[:10]}")
        X = X[list(self.feature_names_in_)]
        recoded = {}
        for column, cats in self.categories_.items():
            dtype = X[column].dtype
            if _same_categories(dtype, cats):  # already coded as in training (scoring's frames)
                continue
            text = X[column].astype(object)
            recoded[column] = pd.Categorical(text.where(text.isin(cats)), categories=cats)
        return _check_frame(X.assign(**recoded) if recoded else X)

    def member_scores(self, X: pd.DataFrame) -> np.ndarray:
        """(rows, members): each member's log-odds."""
        X = self.align(X)
        return np.column_stack([m.decision(X) for m in self.members_])

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """The ensemble's log-odds (before calibration)."""
        return self.intercept_ + self.member_scores(X) @ self.weights_

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """(rows, 2): calibrated P(churn) and P(renewed), scikit-learn's column order."""
        p = self.calibrator_.predict(self.decision_function(X))
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """1 where the calibrated win probability is at least 0.5, else 0."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def predict_interval(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Venn-ABERS lower and upper win probability per row."""
        return self.calibrator_.interval(self.decision_function(X))

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Exact per-feature log-odds contributions; column ``_base`` holds the expected value.

        Each row sums to :meth:`decision_function` (up to float rounding).
        """
        X = self.align(X)
        total = np.zeros((len(X), X.shape[1] + 1))
        for weight, member in zip(self.weights_, self.members_, strict=True):
            part = np.asarray(member.contributions(X), dtype=float)  # a member's own array
            part *= weight  # in place: no temporary of the page's size per member
            total += part
        total[:, -1] += self.intercept_
        return pd.DataFrame(total, columns=[*X.columns, "_base"], index=X.index, copy=False)


def make_ensemble(
    cfg: TrainConfig,
    lightgbm: dict[str, Any] | None = None,
    linear: dict[str, Any] | None = None,
) -> HealthEnsemble:
    """The ensemble the ``train`` section describes (member settings as tuned, when given)."""
    return HealthEnsemble(
        members=tuple(cfg.members),
        lightgbm=lightgbm or cfg.lightgbm.model_dump(),
        linear=linear or cfg.linear.model_dump(),
        additive=cfg.additive.model_dump(),
        cv_folds=cfg.cv_folds,
        calibration=cfg.calibration,
        seed=cfg.seed,
        n_jobs=cfg.n_jobs,
        min_member_weight=cfg.min_member_weight,
        stacking=cfg.stacking,
    )


@dataclass(frozen=True)
class StackChoice:
    """The stack against its best single member, by out-of-fold log loss with its uncertainty.

    ``gain`` is the best member's cross-fitted out-of-fold log loss per row minus the stack's
    (positive: the stack is better), ``low`` and ``high`` its 95 % interval from a paired
    bootstrap over accounts, ``losses`` every candidate's loss (``"stack"`` and each member).
    ``mode``: ``"stack"`` when the interval lies above 0, ``"single"`` (``member`` alone) when
    it lies below 0, else ``"blend"``: the stack's intercept and weights moved ``shrinkage`` of
    the way to the member's (0 = the stack, 1 = the member alone). ``rarer`` and ``groups`` are
    the counts it rests on: rows of the rarer class (the non-renewals, usually) and accounts.
    """

    mode: Literal["stack", "blend", "single"]
    member: str
    shrinkage: float
    reason: str
    losses: dict[str, float]
    gain: float
    low: float
    high: float
    rarer: int
    groups: int


def choose_stacking(
    scores: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]],
    stacked: np.ndarray,
    names: tuple[str, ...],
    seed: int = 0,
    replicates: int = GUARD_REPLICATES,
) -> StackChoice:
    """The stack where it beats the best single member beyond noise, else a shrunk stack.

    Each candidate (the stack of the ``stacked`` members, and every member alone with its own
    intercept and slope) is fitted on the out-of-fold log-odds of all folds but one and scored
    on that one, so the stack pays for its weights as a member pays for its trees. The best
    member has the lowest such log loss; the stack's gain over it gets a 95 % interval from one
    bootstrap over ``groups`` (an account's rows move together; both meet the same resamples).
    Above 0: the stack; below 0: the member alone; otherwise the weights move toward the
    member's by the share of resamples in which the stack is no better. That share, and so the
    shrinkage, grows as the rarer class shrinks (the interval widens): nothing to set.

    Args:
        scores: (rows, members) out-of-fold log-odds of each member.
        y: 1 = renewed, 0 = churned.
        groups: Account id per row.
        splits: The (fit rows, held rows) folds the members were scored on.
        stacked: Which members the stack combines (the others fell below
            ``min_member_weight``).
        names: The members' names, in the columns' order.
        seed: Seed of the bootstrap.
        replicates: Resamples of accounts.

    Returns:
        The choice, its figures and a one-line reason.
    """
    sign = 2 * np.asarray(y) - 1
    candidates = {"stack": np.flatnonzero(stacked)}
    candidates |= {name: np.array([k]) for k, name in enumerate(names)}
    loss = {}
    for name, columns in candidates.items():
        z = np.empty(len(y))
        for fit_rows, held_rows in splits:
            b, w = _stack(scores[np.ix_(fit_rows, columns)], y[fit_rows])
            z[held_rows] = b + scores[np.ix_(held_rows, columns)] @ w
        loss[name] = -log_expit(sign * z)
    best = min(names, key=lambda n: (loss[n].mean(), names.index(n)))
    codes, uniques = pd.factorize(pd.Series(groups), sort=True)
    per_group = np.bincount(codes, weights=loss[best] - loss["stack"], minlength=uniques.size)
    rows = np.bincount(codes, minlength=uniques.size).astype(float)
    rng = np.random.default_rng(seed)
    draws = np.empty(replicates)
    for r in range(replicates):
        counts = np.bincount(rng.integers(0, uniques.size, uniques.size), minlength=uniques.size)
        draws[r] = counts @ per_group / (counts @ rows)
    low, high = (float(q) for q in np.quantile(draws, [0.025, 0.975]))
    gain = float(loss[best].mean() - loss["stack"].mean())
    rarer = int(min(np.sum(y), len(y) - np.sum(y)))
    figures = (
        f"the stack's out-of-fold log loss {loss['stack'].mean():.4f} against {best} alone "
        f"{loss[best].mean():.4f}: gain {gain:+.4f} (95 % interval {low:+.4f} to {high:+.4f}; "
        f"{rarer:,} rows of the rarer class, {uniques.size:,} accounts)"
    )
    if stacked.sum() == 1:
        best = names[candidates["stack"][0]]
        mode, shrinkage = "single", 1.0
        only = "the only member" if len(names) == 1 else "the only one above min_member_weight"
        reason = f"{best} alone: {only}"
    elif low > 0:
        mode, shrinkage, reason = "stack", 0.0, f"{figures}: stacked"
    elif high < 0:
        mode, shrinkage, reason = "single", 1.0, f"{figures}: the stack is worse, {best} alone"
    else:
        mode, shrinkage = "blend", float(np.mean(draws <= 0))
        reason = (
            f"{figures}, within noise: the stack's weights moved {shrinkage:.0%} of the way "
            f"to {best} alone (the share of resamples where the stack is no better)"
        )
    return StackChoice(
        mode=mode,
        member=best,
        shrinkage=shrinkage,
        reason=reason,
        losses={name: float(values.mean()) for name, values in loss.items()},
        gain=gain,
        low=low,
        high=high,
        rarer=rarer,
        groups=int(uniques.size),
    )


def _stack(scores: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Intercept and non-negative weights of a logistic meta-learner on members' log-odds."""
    sign = 2 * y - 1

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = theta[0] + scores @ theta[1:]
        grad_z = -sign * expit(-sign * z)
        value = -log_expit(sign * z).mean()
        return value, np.concatenate([[grad_z.mean()], scores.T @ grad_z / len(z)])

    k = scores.shape[1]
    start = np.concatenate([[0.0], np.full(k, 1.0 / k)])
    bounds = [(None, None)] + [(0.0, None)] * k
    result = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
    return float(result.x[0]), np.asarray(result.x[1:])


def _spread(weights: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """The kept members' weights in place among all members, 0 for the others."""
    out = np.zeros(kept.size)
    out[kept] = weights
    return out


def _placed(values: np.ndarray, columns: list[int] | np.ndarray, width: int) -> np.ndarray:
    """``values`` at ``columns`` of a row of ``width`` zeros."""
    out = np.zeros(width)
    out[np.asarray(columns, dtype=int)] = values
    return out


def _cross_fit(
    method: Method, score: np.ndarray, y: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]]
) -> np.ndarray:
    out = np.empty(score.size)
    for fit_rows, held_rows in splits:
        out[held_rows] = (
            Calibrator(method, with_interval=False)
            .fit(score[fit_rows], y[fit_rows])
            .predict(score[held_rows])
        )
    return out


def _same_categories(dtype: object, categories: list[object]) -> bool:
    """Whether a column of ``dtype`` is coded as training coded it: unordered categories,
    the same ones in the same order (so each code means the same category)."""
    return (
        isinstance(dtype, pd.CategoricalDtype)
        and not dtype.ordered
        and len(dtype.categories) == len(categories)
        and bool((dtype.categories.astype(object) == pd.Index(categories, dtype=object)).all())
    )


def _check_frame(X: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise ModelInputError(f"expected a pandas DataFrame of features, got {type(X).__name__}")
    bad = [
        c
        for c in X.columns
        if not isinstance(X[c].dtype, pd.CategoricalDtype)
        and not pd.api.types.is_numeric_dtype(X[c].dtype)
    ]
    if bad:
        raise ModelInputError(f"non-numeric columns must be pandas 'category' dtype: {bad[:10]}")
    return X


def _check_label(y: np.ndarray | pd.Series, rows: int) -> np.ndarray:
    values = np.asarray(y, dtype=float)
    if values.shape != (rows,):
        raise ModelInputError(f"label has shape {values.shape}, expected ({rows},)")
    if np.isnan(values).any() or not np.isin(values, [0, 1]).all():
        raise ModelInputError("label must be 0/1 with no missing values (drop censored snapshots)")
    if values.min() == values.max():
        raise ModelInputError(
            f"label has one class only ({int(values[0])}): every labelled snapshot "
            f"{'renewed' if values[0] == 1 else 'churned'}; a win model needs both outcomes"
        )
    return values.astype(int)
