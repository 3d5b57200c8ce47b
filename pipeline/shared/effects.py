"""The effects step of ``make train``: each play's effect on renewal, from the interventions log.

Reads the log, pairs every labelled snapshot with the play decided in the period before it
(:func:`~models.interventions.uplift.decision_table`), rebuilds the play-history columns as of the
decision from the log (:func:`history_at_decision`), and fits
:class:`~models.interventions.uplift.PlayEffects` on the decision context: the snapshot's features,
the win model's probability for it, its segment."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features import build_feature_table
from models.interventions.uplift import (
    CONTROL,
    PlayEffects,
    context_frame,
    decision_table,
    segments,
)
from models.win.ensemble import HealthEnsemble
from pipeline import io
from pipeline.config import Params
from pipeline.io.engines import make_engine
from pipeline.shared.asof import pinned_features

log = logging.getLogger("healthscore")

HISTORY_FAMILY = "interventions"  # the catalog family whose columns count past plays
HISTORY_TABLE = "interventions"  # and the contract table it is built from


@dataclass
class EffectsFit:
    """The fitted play-effect model, its decision rows, fit metrics and average-effects table."""

    model: PlayEffects
    decisions: pd.DataFrame  # key, treatment, p0 of every decision row (for evaluation)
    metrics: dict[str, float]
    table: pd.DataFrame  # average effects, by segment and overlap, long form (an artifact)


def read_plays(params: Params) -> pd.DataFrame | None:
    """The interventions log (account_id, ts, type …), or None where the data has none."""
    with io.read_raw(params.data) as raw:
        return _plays(raw)


def _plays(raw: io.RawData) -> pd.DataFrame | None:
    return raw.frame(HISTORY_TABLE) if raw.has(HISTORY_TABLE) else None


def history_at_decision(
    raw: io.RawData,
    params: Params,
    catalog: pd.DataFrame,
    decisions: pd.DataFrame,
    history: list[str],
) -> pd.DataFrame:
    """The play-history columns rebuilt from the log as of each row's ``decided_at``.

    A decision row's features are its snapshot's, at the end of the decision period; the ones
    that count past plays would count the very play being judged, so they are built again by
    the same feature family on a spine at ``decided_at`` (rows strictly before it, the kinds
    pinned to the catalog's): what the CSM's history looked like when deciding, for every row.
    """
    cfg = pinned_features(params.features, catalog)
    spine = decisions[["account_id", "decided_at", "contract_id"]].rename(
        columns={"decided_at": "as_of"}
    )
    spine = spine.assign(
        as_of=pd.to_datetime(spine["as_of"]),
        days_to_renewal=np.nan,  # not read by the history family
    ).drop_duplicates(["account_id", "as_of"])
    with tempfile.TemporaryDirectory() as tmp:
        built, _ = build_feature_table(
            make_engine(cfg.engine, raw, Path(tmp)), spine, cfg, [HISTORY_TABLE]
        )
    built = built[["account_id", "as_of", *history]].rename(columns={"as_of": "decided_at"})
    keys = decisions[["account_id", "decided_at"]].assign(
        decided_at=pd.to_datetime(decisions["decided_at"])
    )
    rebuilt = keys.merge(built, on=["account_id", "decided_at"], how="left", validate="many_to_one")
    return decisions.assign(**{c: rebuilt[c].to_numpy() for c in history})


def fit_effects(
    params: Params,
    table: pd.DataFrame,
    names: list[str],
    catalog: pd.DataFrame,
    ensemble: HealthEnsemble,
) -> EffectsFit | None:
    """Fit the effect model on every labelled snapshot; None when there is nothing to learn from."""
    cfg = params.effects
    if not cfg.enabled:
        log.info("effects: disabled (effects.enabled: false)")
        return None
    missing = [m for m in cfg.modifiers if m not in names]
    if missing:
        raise ValueError(f"effects.modifiers: not features of the model: {missing}")
    history = catalog.loc[catalog["family"] == HISTORY_FAMILY, "name"].tolist()
    labelled = table[table["renewed"].notna()].reset_index(drop=True)
    with io.read_raw(params.data) as raw:  # once: validating the tables takes seconds
        plays = _plays(raw)
        if plays is None or plays.empty:
            log.info("effects: no interventions log: no effect model, no plans")
            return None
        decisions = decision_table(labelled, plays, params.features.frequency, history=[])
        if history:
            decisions = history_at_decision(raw, params, catalog, decisions, history)
    counts = decisions["treatment"].value_counts()
    rare = [k for k, n in counts.items() if k != CONTROL and n < cfg.min_treated]
    if rare:
        log.info(
            "effects: %s logged fewer than %d times in decision periods: not estimated",
            ", ".join(f"{k} ({counts[k]})" for k in rare), cfg.min_treated,
        )  # fmt: skip
        decisions = decisions[~decisions["treatment"].isin(rare)].reset_index(drop=True)
    if (decisions["treatment"] != CONTROL).sum() == 0:
        log.info("effects: no play falls in a labelled snapshot's decision period: no model")
        return None
    context = context_frame(decisions, catalog, names)
    p0 = ensemble.predict_proba(context)[:, 1]
    model = PlayEffects(
        min_propensity=cfg.min_propensity,
        overlap=tuple(cfg.overlap),
        folds=cfg.folds,
        lightgbm=cfg.lightgbm.model_dump(),
        seed=params.train.seed,
        n_jobs=params.train.n_jobs,
        alpha=cfg.alpha,
    ).fit(
        context,
        decisions["treatment"].to_numpy(),
        decisions["renewed"].astype(int).to_numpy(),
        decisions["account_id"].to_numpy(),
        p0,
        segments(decisions),
        decisions[cfg.modifiers] if cfg.modifiers else None,
    )
    average = model.average_.join(model.overlap_).join(model.s_average_)
    metrics: dict[str, float] = {}
    for kind, row in average.iterrows():
        for column in ("ate", "lo", "hi", "se", "robustness", "share_outside_overlap"):
            metrics[f"effect_{kind}_{column}"] = float(row[column])
        metrics[f"effect_{kind}_s_learner"] = float(row["s_learner"])
    for kind, row in average.iterrows():
        log.info(
            "effects: %-18s %+.4f [%+.4f, %+.4f] on P(renew), %d logged, robustness %.4f, "
            "%.0f%% outside overlap; S-learner %+.4f",
            kind, row["ate"], row["lo"], row["hi"], int(row["treated"]), row["robustness"],
            100 * row["share_outside_overlap"], row["s_learner"],
        )  # fmt: skip
    long = pd.concat(
        [
            average.reset_index().assign(segment="all"),
            model.by_segment_,
        ],
        ignore_index=True,
    )
    keep = decisions[
        ["account_id", "contract_id", "as_of", "decided_at", "treatment", "renewed", *cfg.modifiers]
    ]
    return EffectsFit(model, keep.assign(p0=p0, segment=segments(decisions)), metrics, long)
