"""The effects step of ``make train``: each play's effect on renewal, from the interventions log.

Reads the log, pairs every labelled snapshot with the play decided in the period before it
(:func:`~models.interventions.uplift.decision_table`), rebuilds the play-history columns as of the
decision from the log (:func:`history_at_decision`), and fits
:class:`~models.interventions.uplift.PlayEffects` on the decision context: the snapshot's features,
the win model's probability for it, its segment.

The step is optional: :func:`run_effects` never stops training. A kind logged too rarely, or one
whose estimate or sensitivity analysis cannot be computed on this log, is left out with the
reason logged; when no kind can be estimated, or the step fails, the win model is registered
without an effect model and the reason travels with it (``plan`` says so)."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
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
from pipeline.config import ConfigError, Params
from pipeline.errors import INPUT_ERRORS, InputError
from pipeline.io.engines import make_engine
from pipeline.shared.asof import pinned_features

log = logging.getLogger("healthscore")

HISTORY_FAMILY = "interventions"  # the catalog family whose columns count past plays
HISTORY_TABLE = "interventions"  # and the contract table it is built from


class NoEffects(InputError):
    """Nothing to learn an effect model from (effects disabled, no play log, no play logged
    often enough in a labelled snapshot's decision period): the message says which."""


@dataclass
class EffectsFit:
    """The fitted play-effect model, its decision rows, fit metrics and average-effects table."""

    model: PlayEffects
    decisions: pd.DataFrame  # key, treatment, p0 of every decision row (for evaluation)
    metrics: dict[str, float]
    table: pd.DataFrame  # average effects, by segment and overlap, long form (an artifact)
    skipped: dict[str, str] = field(default_factory=dict)  # kinds logged, not estimated: why


@dataclass(frozen=True)
class EffectsOutcome:
    """What the effects step of training gave: the fit (None when there is none) and, in
    words, what was estimated and what not and why (the run's ``effects`` tag, and the
    model's, which ``plan`` repeats)."""

    fit: EffectsFit | None
    note: str
    skipped: dict[str, str] = field(default_factory=dict)  # kind → why it has no estimate


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


def check_modifiers(params: Params, names: list[str]) -> None:
    """Refuse, before any work, ``effects.modifiers`` that are not features of the model.

    Raises:
        ConfigError: a modifier is not one of ``names``.
    """
    missing = [m for m in params.effects.modifiers if m not in names]
    if missing:
        raise ConfigError(f"effects.modifiers: not features of the model: {missing}")


def run_effects(
    params: Params,
    table: pd.DataFrame,
    names: list[str],
    catalog: pd.DataFrame,
    ensemble: HealthEnsemble,
) -> EffectsOutcome:
    """The effects step of training, which never stops it: the effect model where the data
    gives one, else None and why (logged: INFO for nothing to learn from, WARNING for data
    that cannot give an estimate, ERROR with the traceback for a library failure or a bug).

    Raises:
        ConfigError: ``effects.modifiers`` names a column that is not a feature.
    """
    if params.data.source == "table":
        return EffectsOutcome(None, "no interventions log (data.source: table)")
    try:
        fit = fit_effects(params, table, names, catalog, ensemble)
    except ConfigError:
        raise
    except NoEffects as exc:
        log.info("effects: %s: no effect model, no plans", exc)
        return EffectsOutcome(None, str(exc))
    except INPUT_ERRORS as exc:
        log.warning(
            "effects: not estimated on this data: %s; the win model is registered without an "
            "effect model, so plan has no play to recommend", exc,
        )  # fmt: skip
        return EffectsOutcome(None, f"not estimated on this data: {exc}")
    except Exception as exc:  # a library failure or a bug: the win model still ships
        log.error(
            "effects: failed (%s: %s); the win model is registered without an effect model, "
            "so plan has no play to recommend", type(exc).__name__, exc, exc_info=True,
        )  # fmt: skip
        return EffectsOutcome(None, f"failed: {type(exc).__name__}: {exc}")
    estimated = ", ".join(fit.model.kinds_)
    skipped = "; ".join(f"{kind} ({why})" for kind, why in fit.skipped.items())
    note = f"estimated for {estimated}" + (f"; not estimated: {skipped}" if skipped else "")
    return EffectsOutcome(fit, note, dict(fit.skipped))


def fit_effects(
    params: Params,
    table: pd.DataFrame,
    names: list[str],
    catalog: pd.DataFrame,
    ensemble: HealthEnsemble,
) -> EffectsFit:
    """Fit the effect model on every labelled snapshot.

    A kind logged fewer than ``effects.min_treated`` times is left out (INFO); one whose
    estimate or sensitivity analysis cannot be computed is left out by the model (WARNING,
    saying why); both are in :attr:`EffectsFit.skipped`.

    Raises:
        NoEffects: nothing to learn from (disabled, no log, no play in a decision period).
        ConfigError: ``effects.modifiers`` names a column that is not a feature.
        ModelInputError: no kind's effect can be estimated from the log.
    """
    cfg = params.effects
    if not cfg.enabled:
        raise NoEffects("disabled (effects.enabled: false)")
    check_modifiers(params, names)
    history = catalog.loc[catalog["family"] == HISTORY_FAMILY, "name"].tolist()
    labelled = table[table["renewed"].notna()].reset_index(drop=True)
    # once, and only the log and what its features join (contracts, accounts): validating
    # every table took seconds
    with io.read_raw(params.data, only=[HISTORY_TABLE, "contracts"]) as raw:
        plays = _plays(raw)
        if plays is None or plays.empty:
            raise NoEffects("no interventions log")
        decisions = decision_table(labelled, plays, params.features.frequency, history=[])
        if history:
            decisions = history_at_decision(raw, params, catalog, decisions, history)
    counts = decisions["treatment"].value_counts()
    rare = [k for k, n in counts.items() if k != CONTROL and n < cfg.min_treated]
    skipped = {
        k: f"logged {counts[k]} times in decision periods, fewer than effects.min_treated "
        f"{cfg.min_treated}"
        for k in rare
    }
    if rare:
        log.info(
            "effects: %s logged fewer than %d times in decision periods: not estimated",
            ", ".join(f"{k} ({counts[k]})" for k in rare), cfg.min_treated,
        )  # fmt: skip
        decisions = decisions[~decisions["treatment"].isin(rare)].reset_index(drop=True)
    if (decisions["treatment"] != CONTROL).sum() == 0:
        raise NoEffects(
            "no play falls in a labelled snapshot's decision period"
            + (f" often enough (effects.min_treated {cfg.min_treated})" if rare else "")
        )
    kinds = sorted(set(decisions["treatment"]) - {CONTROL})
    log.info(
        "effects: estimating %d kinds of play (%s) from %s decisions of %s accounts",
        len(kinds), ", ".join(kinds), f"{len(decisions):,}",
        f"{decisions['account_id'].nunique():,}",
    )  # fmt: skip
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
    for kind, why in model.skipped_.items():
        log.warning("effects: %s not estimated, the rest refitted without it: %s", kind, why)
    skipped |= model.skipped_
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
    learned = ~decisions["treatment"].isin(list(model.skipped_)).to_numpy()
    columns = ["account_id", "contract_id", "as_of", "decided_at", "treatment", "renewed"]
    keep = decisions.loc[learned, [*columns, *cfg.modifiers]]
    rows = keep.assign(p0=p0[learned], segment=segments(decisions)[learned])
    return EffectsFit(model, rows, metrics, long, skipped)
