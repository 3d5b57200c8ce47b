"""What the randomised plays taught so far: the experiment's read-out that grounds the plan.

Reads the ``assignments`` table (every arm a policy assigned, the no-play controls included),
keeps the randomised rows decided at least ``lag_days`` before the plan's date, and measures each
row's **surrogate** outcome: the change in the champion win model's probability from the decision
to ``lag_days`` after it, with the play-history columns held at their values at the decision
(they move mechanically when a play is logged; what should move is the account's behaviour). An
account without a contract in force by then did not renew: it is read on the last day of the
contract decided on, its health as it left (reading it as 0 made the renewal's coin flip most of
the read-out's variance).

Each kind's average effect then comes from the randomised rows alone
(:func:`models.interventions.experiment.randomised_effects`), and the observational model's
estimates are shifted by the gap over the same rows (``Grounding`` in the plan).

The surrogate is valid when plays act on renewal only through what the win model sees (true in
the synthetic world by construction); on real data it is an assumption to check against renewals
as they arrive (``renewals`` in the read-out: the same estimate on the renewal outcome).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

import features
from models.interventions.experiment import CONTROL, randomised_effects
from models.interventions.uplift import context_frame, segments
from pipeline import io
from pipeline.config import FeaturesConfig
from pipeline.io.engines import make_engine
from pipeline.io.registry import HealthModel
from pipeline.shared.asof import pinned_features
from pipeline.shared.effects import HISTORY_FAMILY

log = logging.getLogger("healthscore")

TABLE = "assignments"
NO_PLAY = "none"
SEGMENT = "_segment"  # the effect model's segment of a row (a feature may be named "segment")


@dataclass(frozen=True)
class Readout:
    """The experiment so far, per kind.

    Attributes:
        surrogate: ``randomised_effects`` on the surrogate outcome, with ``observational`` (the
            effect model's average over the same rows) and ``shift`` (the grounding correction).
        renewals: the same estimate on the renewal outcome, for the rows whose renewal is known.
        rows: randomised rows read (decided ``lag_days`` or more before the plan).
        slope: mean of p(1 − p) over those rows at their decision.
    """

    surrogate: pd.DataFrame
    renewals: pd.DataFrame
    rows: int
    slope: float


def randomised_rows(raw: io.RawData, as_of: date, lag_days: int) -> pd.DataFrame:
    """Randomised assignments decided at least ``lag_days`` before ``as_of`` (empty if none)."""
    if not raw.has(TABLE):
        return pd.DataFrame(columns=["account_id", "decided_at", "arm", "propensity"])
    given = raw.frame(TABLE)
    given = given[given["source"] == "randomised"]
    ts = pd.to_datetime(given["ts"])
    decided = (ts.dt.tz_convert(None) if ts.dt.tz is not None else ts).dt.normalize()
    ready = decided + pd.Timedelta(days=lag_days) <= pd.Timestamp(as_of)
    out = given.assign(decided_at=decided)[ready]
    return out[["account_id", "decided_at", "arm", "propensity"]].reset_index(drop=True)


def experiment_rows(
    raw: io.RawData,
    features_cfg: FeaturesConfig,
    model: HealthModel,
    as_of: date,
    lag_days: int,
) -> pd.DataFrame | None:
    """The randomised rows old enough to read out on ``as_of``, one per assignment, with their
    surrogate and renewal outcomes; None when there are none (or no effect model).

    Columns: ``account_id``, ``decided_at``, ``arm`` (kind index, :data:`CONTROL` for no play),
    ``propensity``, ``p_before`` (the champion's probability at the decision), ``surrogate``
    (its change ``lag_days`` after, play history held), ``renewed`` (1/0, NaN while unknown),
    ``_segment`` (the effect model's segment), then the win model's features at the decision.
    Rows whose decision snapshot could not be built are left out.
    """
    effects = model.effects
    if effects is None:
        return None
    kinds = list(effects.kinds_)
    with tempfile.TemporaryDirectory() as tmp:
        rows = randomised_rows(raw, as_of, lag_days)
        rows = rows[rows["arm"].isin([*kinds, NO_PLAY])].reset_index(drop=True)
        if rows.empty:
            return None
        contracts = raw.frame("contracts")
        after_day = rows["decided_at"] + pd.Timedelta(days=lag_days)
        last_day = _last_day(contracts, rows, after_day)
        spine = _spine(contracts, rows["account_id"], [rows["decided_at"], after_day, last_day])
        cfg = pinned_features(features_cfg, model.catalog)
        built, _ = features.build_feature_table(
            make_engine(cfg.engine, raw, Path(tmp)), spine, cfg, raw.present
        )
        outcomes = features.contract_outcomes(contracts, features_cfg.grace_days, io.data_end(raw))
    before = _at(built, rows["account_id"], rows["decided_at"])
    history = model.catalog.loc[model.catalog["family"] == HISTORY_FAMILY, "name"].tolist()
    held = {c: before[c].to_numpy() for c in history if c in before}
    p_before = _predict(model, before)
    # the window's end; where the account has no contract in force by then (it did not renew),
    # the last day of the contract decided on: its health as it left, not the renewal's coin flip
    p_after = _predict(model, _at(built, rows["account_id"], after_day).assign(**held))
    p_last = _predict(model, _at(built, rows["account_id"], last_day).assign(**held))
    p_after = np.where(np.isnan(p_after), np.nan_to_num(p_last, nan=0.0), p_after)
    arm = rows["arm"].map({NO_PLAY: CONTROL, **{k: i for i, k in enumerate(kinds)}}).to_numpy()
    propensity = rows["propensity"].to_numpy(dtype=float)
    known = before["account_id"].notna().to_numpy()
    ok = known & np.isfinite(p_before) & np.isfinite(propensity)
    table = pd.DataFrame(
        {
            "account_id": rows["account_id"].to_numpy(),
            "decided_at": rows["decided_at"].to_numpy(),
            "arm": arm.astype(np.int64),
            "propensity": propensity,
            "p_before": p_before,
            "surrogate": p_after - p_before,
            "renewed": _renewals(before, outcomes),
            SEGMENT: segments(before),
        }
    )
    context = before[model.features].reset_index(drop=True)
    return pd.concat([table, context], axis=1)[ok].reset_index(drop=True)


def read_experiment(
    raw: io.RawData,
    features_cfg: FeaturesConfig,
    model: HealthModel,
    as_of: date,
    lag_days: int,
    min_rows: int,
    adjust: bool = True,
) -> Readout | None:
    """The experiment's read-out on ``as_of`` from the raw tables; None when they hold no
    randomised rows old enough yet (or the model has no effect model).

    With ``adjust``, both outcomes are read against what the win probability at the decision
    predicts of them (:func:`~models.interventions.experiment.adjust_outcome`): still unbiased,
    and narrower by as much of the outcome's spread as that probability explains."""
    table = experiment_rows(raw, features_cfg, model, as_of, lag_days)
    if table is None or table.empty:
        return None
    effects = model.effects
    assert effects is not None  # experiment_rows returns None without one
    kinds = list(effects.kinds_)
    arm, propensity = table["arm"].to_numpy(), table["propensity"].to_numpy()
    p0 = table["p_before"].to_numpy()
    q = np.clip(p0, 1e-6, 1 - 1e-6)
    covariates = np.column_stack([p0, np.log(q / (1 - q))]) if adjust else None
    surrogate = randomised_effects(
        arm, propensity, table["surrogate"].to_numpy(), kinds, min_rows, covariates
    )
    context = context_frame(table, model.catalog, model.features)
    mods = context[list(effects.modifier_columns_)] if effects.modifier_columns_ else None
    point, _, _ = effects.effects(p0, table[SEGMENT].to_numpy(), mods)
    observational = pd.Series(point.mean(axis=0), index=kinds)
    surrogate = surrogate.assign(
        observational=observational, shift=surrogate["ate"] - observational
    )
    renewed = table["renewed"].to_numpy()
    has = ~np.isnan(renewed)
    renewals = randomised_effects(
        arm[has], propensity[has], renewed[has], kinds, min_rows,
        None if covariates is None else covariates[has],
    )  # fmt: skip
    slope = float(np.mean(p0 * (1 - p0)))
    return Readout(surrogate=surrogate, renewals=renewals, rows=len(table), slope=slope)


def _last_day(contracts: pd.DataFrame, rows: pd.DataFrame, after: pd.Series) -> pd.Series:
    """The day before the end of the contract in force at each decision, within the window."""
    spine = pd.concat(
        [features.make_scoring_spine(contracts, pd.Timestamp(day)) for day in
         rows["decided_at"].drop_duplicates()],
        ignore_index=True,
    )  # fmt: skip
    ends = rows[["account_id", "decided_at"]].merge(
        spine.rename(columns={"as_of": "decided_at"})[["account_id", "decided_at", "end_date"]],
        on=["account_id", "decided_at"],
        how="left",
    )["end_date"]
    last = pd.to_datetime(ends).dt.normalize() - pd.Timedelta(days=1)
    return last.clip(lower=rows["decided_at"], upper=after).fillna(after)


def _spine(contracts: pd.DataFrame, accounts: pd.Series, days: list[pd.Series]) -> pd.DataFrame:
    """Scoring snapshots of ``accounts`` at each of their ``days`` (one series per reading)."""
    wanted = pd.DataFrame(
        {"account_id": pd.concat([accounts] * len(days)), "as_of": pd.concat(days)}
    ).drop_duplicates()
    parts = []
    for day, group in wanted.groupby("as_of"):
        spine = features.make_scoring_spine(contracts, pd.Timestamp(day))
        parts.append(spine[spine["account_id"].isin(group["account_id"])])
    return pd.concat(parts, ignore_index=True)


def _at(built: pd.DataFrame, accounts: pd.Series, days: pd.Series) -> pd.DataFrame:
    """The built rows of (account, day), in that order; all-missing where none was built."""
    keys = pd.DataFrame({"account_id": accounts.to_numpy(), "as_of": days.to_numpy()})
    table = built.copy()  # one block: the feature build leaves it fragmented
    table["as_of"] = pd.to_datetime(table["as_of"])
    merged = keys.merge(table, on=["account_id", "as_of"], how="left", indicator=True)
    present = merged["_merge"] == "both"
    return merged.drop(columns="_merge").assign(account_id=merged["account_id"].where(present))


def _predict(model: HealthModel, table: pd.DataFrame) -> np.ndarray:
    """The champion's win probability of each row (NaN for rows not built)."""
    out = np.full(len(table), np.nan)
    present = table["account_id"].notna().to_numpy()
    if present.any():
        X = model.ensemble.align(table.loc[present, model.features])
        out[present] = model.ensemble.predict_proba(X)[:, 1]
    return out


def _renewals(before: pd.DataFrame, outcomes: pd.DataFrame) -> np.ndarray:
    """1/0 renewal of the contract in force at each decision, NaN while unknown."""
    known = outcomes[["contract_id", "renewed"]].drop_duplicates("contract_id")
    merged = before[["contract_id"]].merge(known, on="contract_id", how="left")
    return pd.to_numeric(merged["renewed"], errors="coerce").to_numpy(dtype=float)
