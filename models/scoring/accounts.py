"""One scoring run, pure: accounts' features in, what the CS team reads out.

:func:`score_snapshot` turns a snapshot of features into scores (calibrated win probability
with its interval, health, band, ARR at risk, a unique priority), drivers in plain words and
per-feature points, chunk by chunk; :func:`compare_runs` sets a run beside the previous one:
what changed, which component and feature moved it most, and which accounts to alert on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from models.config import ScoreConfig
from models.explain import drivers as explain
from models.renewal.size import renewal_dollars
from models.scoring.health import (
    BAND_ORDER,
    health_band,
    health_score,
    priority_rank,
    value_of_acting,
)

if TYPE_CHECKING:
    from models.renewal.size import RenewalSize
    from models.win.ensemble import HealthEnsemble


@dataclass(frozen=True)
class ScoredAccounts:
    """A scored snapshot.

    Attributes:
        scores: one row per account, ordered by ``priority`` (1 = act first).
        drivers: long form, one row per (account, risk or strength, rank), ``value`` as text.
        points: per-feature points of health (float32), indexed by ``account_id``.
    """

    scores: pd.DataFrame
    drivers: pd.DataFrame
    points: pd.DataFrame


@dataclass(frozen=True)
class Changes:
    """A run set beside the previous one.

    Attributes:
        changes: one row per account: health and band now and before, the change, the feature
            that fell and rose most (with its points) and the change of each component.
        alerts: the accounts whose band worsened or whose health fell by ``alert_drop`` or
            more, with a ``reason``, ordered by priority.
    """

    changes: pd.DataFrame
    alerts: pd.DataFrame


@dataclass(frozen=True)
class Words:
    """How the catalog puts a model's features in words, and which say what the account is
    (its contract, size, segment …: ``score.context_components``) rather than what the team
    can change."""

    descriptions: dict[str, str]
    components: dict[str, str]
    blanks: dict[str, str]
    context: frozenset[str]

    @classmethod
    def of(cls, catalog: pd.DataFrame, features: Sequence[str], context: Sequence[str]) -> Words:
        """From the model's catalog (``name``, ``component``, ``description``, ``blank``).

        When every feature is context (a prebuilt table mapped to no component), none is: the
        drivers are then all the model has to say.
        """
        described = catalog.set_index("name")
        blanks = described["blank"].dropna() if "blank" in described else pd.Series(dtype=str)
        components = described["component"].to_dict()
        about = set(context)
        shown = frozenset(f for f in features if components.get(f) in about)
        return cls(
            described["description"].to_dict(),
            components,
            blanks.to_dict(),
            shown if len(shown) < len(features) else frozenset(),
        )

    def acting(self, columns: Sequence[str]) -> list[str]:
        """The columns the team can change, in order."""
        return [c for c in columns if c not in self.context]

    def about(self, columns: Sequence[str]) -> list[str]:
        """The columns that say what the account is, in order (the rest of :meth:`acting`)."""
        return [c for c in columns if c in self.context]

    def top(
        self,
        points: pd.DataFrame,
        values: pd.DataFrame,
        k: int,
        columns: Sequence[str] | None = None,
        kinds: Sequence[str] = explain.KINDS,
        value_text: Callable[[object], str | None] | None = None,
    ) -> pd.DataFrame:
        """:func:`models.explain.drivers.top_drivers` in these words (among ``columns`` of
        ``points`` only, when given; ``kinds``: risks, strengths or both; ``value_text``: how
        the value column shows a value)."""
        return explain.top_drivers(
            points, values, self.descriptions, self.components, k, self.blanks, columns, kinds,
            value_text,
        )  # fmt: skip


def score_snapshot(
    snapshot: pd.DataFrame,
    ensemble: HealthEnsemble,
    catalog: pd.DataFrame,
    features: Sequence[str],
    cfg: ScoreConfig,
    *,
    horizon_days: int,
    version: str,
    as_of: date,
    account_columns: Sequence[str] = (),
    size: RenewalSize | None = None,
) -> ScoredAccounts:
    """Scores, drivers and per-feature points of every account in ``snapshot``.

    Works in chunks of ``cfg.chunk_rows`` rows, so memory stays bounded whatever the size.

    Args:
        snapshot: one row per account: ``account_id``, ``contract_id``, ``arr``,
            ``days_to_renewal`` and the model's features.
        ensemble: the fitted win model (contributions and calibrator).
        catalog: the model's feature catalog (``name``, ``component``, ``description``).
        features: the model's feature names, in its order.
        cfg: the ``score`` section (bands, number of drivers, chunk size).
        horizon_days: the furthest renewal the model learned on; beyond it ``within_horizon``
            is False.
        version: the model version written beside every score.
        as_of: the date of the run.
        account_columns: descriptive columns (name, segment, CSM) carried through when present.
        size: the renewal-size model: when given, each account also gets its expected renewal
            ARR, contraction and expansion, and P(renews and grows / shrinks).

    Returns:
        The scores ordered by priority, the drivers and the points.
    """
    words = Words.of(catalog, features, cfg.context_components)
    names = list(features)
    parts, driver_parts, point_parts = [], [], []
    for start in range(0, len(snapshot), cfg.chunk_rows):
        chunk = snapshot.iloc[start : start + cfg.chunk_rows]
        frame, top, points = _score_chunk(
            chunk, ensemble, names, words, cfg, horizon_days, account_columns
        )
        if size is not None:
            frame = frame.join(_renewal_columns(size, chunk[names], frame, words, cfg))
        opportunity = cfg.priority.opportunity_feature
        if opportunity and opportunity in chunk:
            frame = frame.assign(open_opportunity_arr=chunk[opportunity].to_numpy(dtype=float))
        parts.append(frame)
        ids = chunk["account_id"].to_numpy()
        driver_parts.append(
            top.assign(account_id=ids[chunk.index.get_indexer(top["row"])]).drop(columns="row")
        )
        point_parts.append(points.astype("float32").set_index(pd.Index(ids, name="account_id")))
    scores = pd.concat(parts, ignore_index=True)
    value = value_of_acting(
        scores["arr_at_risk"].to_numpy(),
        scores["expected_expansion_arr"].to_numpy() if "expected_expansion_arr" in scores else None,
        scores["open_opportunity_arr"].to_numpy() if "open_opportunity_arr" in scores else None,
        scores["days_to_renewal"].to_numpy(dtype=float),
        cfg.priority,
    )
    scores = scores.assign(
        value_of_acting=value,
        priority=priority_rank(value, scores["arr"].to_numpy(), scores["account_id"]),
        model_version=version,
        as_of=pd.Timestamp(as_of),
    ).sort_values("priority", kind="stable")
    drivers = pd.concat(driver_parts, ignore_index=True)
    return ScoredAccounts(scores.reset_index(drop=True), drivers, pd.concat(point_parts))


def _renewal_columns(
    size: RenewalSize, X: pd.DataFrame, frame: pd.DataFrame, words: Words, cfg: ScoreConfig
) -> pd.DataFrame:
    """The renewal in dollars of a chunk's accounts, and ``top_growth_1`` … ``top_growth_k``:
    what most raises each one's chance to grow at renewal, in plain words (the expansion
    model's largest positive contributions, exact in its log-odds, shown as points of
    P(grows | renews)), among what the team can change. The expansion model runs once: its
    probability is its contributions' sum, calibrated."""
    model = size.expand_
    contributions = model.contributions(X)
    up = model.calibrator_.predict(contributions.sum(axis=1).to_numpy())
    base = float(model.calibrator_.predict(contributions["_base"].to_numpy()[:1])[0])
    points = explain.health_points(contributions, up, base)
    top = words.top(points, X, cfg.top_drivers, words.acting(points.columns), ("strength",))
    outlook = size.outlook(up, size.contract_.predict_proba(X)[:, 1])
    arr, p = frame["arr"].to_numpy(), frame["win_probability"].to_numpy()
    dollars = renewal_dollars(arr, p, outlook, size.means_)
    # the interval the win probability's own (Venn-ABERS) interval gives the expectation
    per_renewal = arr * outlook.expected_ratio
    out = pd.DataFrame(
        {
            "expected_renewal_arr": dollars.expected_renewal_arr,
            "expected_renewal_arr_low": per_renewal * frame["win_probability_low"].to_numpy(),
            "expected_renewal_arr_high": per_renewal * frame["win_probability_high"].to_numpy(),
            "expected_contraction_arr": dollars.expected_contraction_arr,
            "expected_expansion_arr": dollars.expected_expansion_arr,
            "p_expand": dollars.p_expand,
            "p_contract": dollars.p_contract,
        },
        index=X.index,
    )
    growth = _driver_columns(top, X.index, cfg.top_drivers, ("strength",), "top_growth_{rank}")
    return pd.concat([out, growth], axis=1)


def _score_chunk(
    chunk: pd.DataFrame,
    ensemble: HealthEnsemble,
    names: list[str],
    words: Words,
    cfg: ScoreConfig,
    horizon_days: int,
    account_columns: Sequence[str],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """One chunk's score rows (index of ``chunk``), top drivers (``row`` = index) and points.

    The drivers are ranked twice: among what the team can change (``actionable``: the
    ``top_risk_k`` / ``top_strength_k`` columns) and, apart, among what the account is
    (``words.context``: its contract, size, segment …)."""
    X = chunk[names]
    contributions = ensemble.contributions(X)
    log_odds = contributions.sum(axis=1).to_numpy()
    p = ensemble.calibrator_.predict(log_odds)
    low, high = ensemble.calibrator_.interval(log_odds)
    base = float(ensemble.calibrator_.predict(contributions["_base"].to_numpy()[:1])[0])
    points = explain.health_points(contributions, p, base)
    per_component = explain.component_points(points, words.components)
    acting = words.acting(points.columns)
    # the drivers' values as the published table shows them: text, made once per distinct value
    top = words.top(points, X, cfg.top_drivers, acting, value_text=_text)
    shown = _driver_columns(top, chunk.index, cfg.top_drivers)
    top = top.assign(actionable=True)
    context = words.about(points.columns)
    if context:
        about = words.top(points, X, cfg.top_drivers, context, value_text=_text)
        about = about.assign(actionable=False)
        top = pd.concat([top, about], ignore_index=True)
    health = health_score(p)
    columns = ["account_id", "contract_id", *_present(chunk, account_columns), "arr"]
    frame = chunk[columns].assign(
        days_to_renewal=chunk["days_to_renewal"].to_numpy(),
        win_probability=p,
        win_probability_low=np.minimum(low, p),
        win_probability_high=np.maximum(high, p),
        health=health,
        band=health_band(health, cfg),
        arr_at_risk=chunk["arr"].to_numpy() * (1 - p),
        # beyond the horizon the model extrapolates from the nearest renewals it learned on
        within_horizon=chunk["days_to_renewal"].isna().to_numpy()
        | (chunk["days_to_renewal"].to_numpy() <= horizon_days),
        **{f"points_{c}": per_component[c].to_numpy() for c in per_component.columns},
    )
    return frame.join(shown), top, points


def compare_runs(
    scores: pd.DataFrame,
    points: pd.DataFrame,
    previous_scores: pd.DataFrame,
    previous_points: pd.DataFrame,
    previous_as_of: date,
    cfg: ScoreConfig,
    values: pd.DataFrame | None = None,
    words: Words | None = None,
) -> Changes:
    """What changed since the previous run, attributed to components and features, and alerts.

    Args:
        scores: this run's scores (``account_id``, ``health``, ``band``, ``arr``, ``priority``
            and the ``points_<component>`` columns).
        points: this run's per-feature points, indexed by ``account_id``.
        previous_scores: the previous run's scores (the same columns).
        previous_points: the previous run's per-feature points, indexed by ``account_id``.
        previous_as_of: the date of the previous run.
        cfg: the ``score`` section (``alert_drop``).
        values: this run's feature values, indexed by ``account_id``; with ``words``, what
            moved most is also said in words, with its value now (``most_fell_text``).
        words: the model's catalog in words (:meth:`Words.of`).

    Returns:
        One row of changes per account of ``scores`` (in its order; NaN where the account was
        not in the previous run) and the alerts among them, ordered by priority.
    """
    joined = scores[["account_id", "health", "band"]].merge(
        previous_scores[["account_id", "health", "band"]], on="account_id", how="left",
        suffixes=("", "_previous"),
    )  # fmt: skip
    changes = joined.assign(
        health_change=joined["health"] - joined["health_previous"],
        previous_as_of=pd.Timestamp(previous_as_of),
    )
    changes = _largest_moves(changes, points, previous_points, values, words)
    score_points = scores.set_index("account_id").filter(like="points_")
    before_components = previous_scores.set_index("account_id").filter(like="points_")
    component_change = score_points.sub(before_components.reindex(score_points.index))
    changes = changes.join(
        component_change.add_suffix("_change").reset_index(drop=True).set_axis(changes.index)
    )
    return Changes(changes, _alerts(changes, scores, cfg.alert_drop))


def _largest_moves(
    changes: pd.DataFrame,
    points: pd.DataFrame,
    previous_points: pd.DataFrame,
    values: pd.DataFrame | None,
    words: Words | None,
) -> pd.DataFrame:
    """``most_fell``/``most_rose`` and their points: the features that moved most, per account;
    with ``values`` and ``words``, among what the team can change, with ``most_fell_text`` /
    ``most_rose_text`` in words."""
    common = [c for c in points.columns if c in previous_points.columns]
    delta = points[common].sub(previous_points[common].reindex(points.index), fill_value=np.nan)
    delta_frame = delta.reindex(changes["account_id"].to_numpy())
    moved = delta_frame.fillna(0).set_axis(changes.index)
    if values is not None and words is not None:  # among what the team can change
        now = values.reindex(changes["account_id"].to_numpy()).set_axis(changes.index)
        moves = words.top(moved[words.acting(moved.columns)], now, k=1)
    else:
        moves = explain.top_drivers(moved, delta_frame.set_axis(changes.index), {}, {}, k=1)
    out = changes.copy()
    for kind, label in (("risk", "fell"), ("strength", "rose")):
        top = moves[(moves["kind"] == kind) & (moves["rank"] == 1)].set_index("row")
        out[f"most_{label}"] = top["feature"].reindex(out.index)
        out[f"most_{label}_points"] = top["points"].reindex(out.index)
        if values is not None and words is not None:
            out[f"most_{label}_text"] = top["text"].reindex(out.index)
    return out


def _alerts(changes: pd.DataFrame, scores: pd.DataFrame, alert_drop: int) -> pd.DataFrame:
    """Accounts whose band worsened or whose health fell by ``alert_drop`` or more."""
    worse = changes["band"].map(BAND_ORDER) < changes["band_previous"].map(BAND_ORDER)
    dropped = changes["health_change"] <= -alert_drop
    alerts = changes[worse | dropped].assign(
        reason=np.where(worse[worse | dropped], "band worsened", f"health fell ≥ {alert_drop}")
    )
    alerts = alerts.merge(scores[["account_id", "arr", "priority"]], on="account_id")
    return alerts.sort_values("priority", kind="stable").reset_index(drop=True)


def _driver_columns(
    top: pd.DataFrame,
    index: pd.Index,
    k: int,
    kinds: Sequence[str] = ("risk", "strength"),
    label: str = "top_{kind}_{rank}",
) -> pd.DataFrame:
    """``top_risk_1`` … ``top_strength_k`` as text columns, one row per account (``label``
    names them). Each column is one take of the text by position, no index lookups."""
    position = index.get_indexer(top["row"])
    text = top["text"].array
    kind, rank = top["kind"].to_numpy(), top["rank"].to_numpy()
    columns = {}
    for name in kinds:
        for r in range(1, k + 1):
            mask = (kind == name) & (rank == r)
            take = np.full(len(index), -1, dtype="int64")
            take[position[mask]] = np.flatnonzero(mask)
            columns[label.format(kind=name, rank=r)] = text.take(take, allow_fill=True)
    return pd.DataFrame(columns, index=index)


def _present(frame: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    return [c for c in columns if c in frame.columns]


def _text(value: object) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
