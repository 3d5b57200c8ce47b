"""Evaluation against the synthetic world's oracle: the only code that reads ``data.oracle_dir``."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import logit
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from models.renewal.size import RenewalSize, renewal_dollars, size_class
from models.win.metrics import (
    bootstrap_intervals,
    classification_metrics,
    expected_calibration_error,
)
from models.win.validation import out_of_time_split
from pipeline.config import Params
from pipeline.io.catalog import load_training_set
from pipeline.shared.effects import EffectsFit
from pipeline.stages.train import Judge
from pipeline.synthetic.oracle import EFFECTS, SNAPSHOTS

log = logging.getLogger("healthscore")


def judge(params: Params) -> Judge | None:
    """The oracle comparison plugged into training, or None where there is no oracle (a
    prebuilt table, or real data without ``data.oracle_dir``)."""
    if params.data.source == "table" or not (params.data.oracle_dir / SNAPSHOTS).exists():
        return None
    top_k = params.train.top_k_percent

    def win(scored: pd.DataFrame) -> dict[str, float]:
        figures = oracle_comparison(params, scored, top_k)
        if not figures:
            return {}
        log.info(
            "train: against the oracle on %d snapshots of %d accounts (%d not renewed): AUC "
            "%.3f vs %.3f (gap %.4f [%.4f, %.4f]), Brier %.4f vs %.4f, ECE %.4f vs %.4f",
            figures["rows"], figures["accounts"], figures["non_renewals"],
            figures["model_roc_auc"], figures["oracle_roc_auc"], figures["gap_roc_auc"],
            figures["gap_roc_auc_low"], figures["gap_roc_auc_high"], figures["model_brier"],
            figures["oracle_brier"], figures["model_ece"], figures["oracle_ece"],
        )  # fmt: skip
        return {f"oracle_{k}": v for k, v in figures.items()}

    return Judge(
        win=win,
        effects=lambda fit: effects_vs_oracle(params, fit),
        size=lambda test, model, p: size_vs_oracle(params, test, model, p),
    )


@dataclass(frozen=True)
class SignalCheck:
    """A plain LightGBM's out-of-time AUC beside the oracle's, on the same snapshots, and the
    ceiling: a LightGBM fitted on the same training rows to the oracle's own probability
    (labels without noise, which no real book has), the best these features allow."""

    model_auc: float
    oracle_auc: float
    train_rows: int
    test_rows: int
    test_from: str
    ceiling_auc: float = float("nan")

    @property
    def gap(self) -> float:
        """How far the oracle's AUC is above the plain model's."""
        return self.oracle_auc - self.model_auc

    @property
    def ceiling_gap(self) -> float:
        """How far the oracle's AUC is above the ceiling's: what the features cannot carry."""
        return self.oracle_auc - self.ceiling_auc


def run_signal_check(params: Params, test_days: int = 180) -> SignalCheck:
    """A plain LightGBM on the training set, out of time, beside the oracle on the same rows.

    Reads ``output_dir/features`` (run ``healthscore features`` first) and the oracle.
    """
    data = load_training_set(params.output_dir)
    table, names = data.table, data.features
    train, test = out_of_time_split(
        table["as_of"], table["renewed"].notna(), params.features.horizon_days, test_days
    )
    model = lgb.LGBMClassifier(
        n_estimators=300,
        learning_rate=0.03,
        num_leaves=15,
        min_child_samples=40,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        random_state=params.synthetic.seed,
        verbose=-1,
    )
    model.fit(table[names].iloc[train], table["renewed"].iloc[train])
    scored = table.iloc[test][["account_id", "as_of", "renewed"]].assign(
        p_model=model.predict_proba(table[names].iloc[test])[:, 1]
    )
    oracle = pd.read_parquet(params.data.oracle_dir / SNAPSHOTS)
    oracle = oracle.assign(as_of=oracle["as_of"].astype(scored["as_of"].dtype))
    oracle = oracle[["account_id", "as_of", "p_renew"]]
    known = (
        table.iloc[train][["account_id", "as_of"]]
        .merge(oracle, on=["account_id", "as_of"], how="left")["p_renew"]
        .to_numpy()
    )
    ceiling = lgb.LGBMRegressor(
        n_estimators=800, learning_rate=0.03, num_leaves=31, min_child_samples=40,
        subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
        random_state=params.synthetic.seed, verbose=-1,
    ).fit(
        table[names].iloc[train[~np.isnan(known)]],
        logit(np.clip(known[~np.isnan(known)], 1e-4, 1 - 1e-4)),
    )  # fmt: skip
    scored["p_ceiling"] = ceiling.predict(table[names].iloc[test])
    joined = scored.merge(oracle, on=["account_id", "as_of"], how="inner")
    if len(joined) < 0.95 * len(scored):
        log.warning("signal check: only %d of %d test snapshots found in the oracle",
                    len(joined), len(scored))  # fmt: skip
    result = SignalCheck(
        model_auc=float(roc_auc_score(joined["renewed"], joined["p_model"])),
        oracle_auc=float(roc_auc_score(joined["renewed"], joined["p_renew"])),
        train_rows=int(train.size),
        test_rows=len(joined),
        test_from=str(np.datetime_as_string(table["as_of"].iloc[test].min().to_datetime64(), "D")),
        ceiling_auc=float(roc_auc_score(joined["renewed"], joined["p_ceiling"])),
    )
    log.info(
        "signal check: plain LightGBM out-of-time AUC %.3f vs oracle %.3f (gap %.3f) on %s "
        "snapshots from %s; trained on %s; the ceiling (the oracle's own probability learned "
        "from the features) %.3f (gap %.3f)",
        result.model_auc, result.oracle_auc, result.gap, f"{result.test_rows:,}",
        result.test_from, f"{result.train_rows:,}", result.ceiling_auc, result.ceiling_gap,
    )  # fmt: skip
    return result


def oracle_comparison(
    params: Params, scored: pd.DataFrame, top_k_percent: list[float]
) -> dict[str, float] | None:
    """The model's out-of-time metrics beside the oracle's on the same snapshots.

    ``scored`` holds ``account_id``, ``as_of``, ``renewed``, ``arr`` and ``p``. Returns None when
    there is no oracle (real data). Keys: ``model_*``, ``oracle_*``, ``gap_*``, the AUC gap's
    paired 95 % interval over accounts (``gap_roc_auc_low`` / ``_high``, ``train.bootstrap``
    resamples) and the counts it rests on (``rows``, ``accounts``, ``non_renewals``).
    """
    path = params.data.oracle_dir / SNAPSHOTS
    if not path.exists():
        return None
    oracle = pd.read_parquet(path, columns=["account_id", "as_of", "p_renew"])
    oracle = oracle.assign(as_of=oracle["as_of"].astype(scored["as_of"].dtype))
    joined = scored.merge(oracle, on=["account_id", "as_of"], how="inner")
    if len(joined) < 0.95 * len(scored):
        log.warning("oracle: only %d of %d test snapshots found", len(joined), len(scored))
    if joined.empty:
        return None
    model = classification_metrics(joined["renewed"], joined["p"], joined["arr"], top_k_percent)
    truth = classification_metrics(
        joined["renewed"], joined["p_renew"], joined["arr"], top_k_percent
    )
    out: dict[str, float] = {"rows": float(len(joined))}
    for key in ("roc_auc", "brier", "ece", "log_loss", "pr_auc"):
        out[f"model_{key}"] = model[key]
        out[f"oracle_{key}"] = truth[key]
        out[f"gap_{key}"] = truth[key] - model[key]
    # the AUC gap's 95 % interval: both scores on the same resamples of accounts (paired)
    paired = bootstrap_intervals(
        joined["renewed"].to_numpy(int),
        {"oracle": joined["p_renew"].to_numpy(float), "model": joined["p"].to_numpy(float)},
        joined["account_id"].to_numpy(), replicates=params.train.bootstrap,
        seed=params.train.seed,
    )  # fmt: skip
    gap = paired[(paired["score"] == "gain_vs_model") & (paired["metric"] == "roc_auc")].iloc[0]
    out["gap_roc_auc_low"], out["gap_roc_auc_high"] = float(gap["low"]), float(gap["high"])
    out["accounts"], out["non_renewals"] = float(gap["groups"]), float(gap["non_renewals"])
    return out


def size_vs_oracle(
    params: Params, test: pd.DataFrame, model: RenewalSize, p_win: np.ndarray
) -> dict[str, float]:
    """The renewal in dollars against the oracle's on the same test snapshots.

    The oracle gives each snapshot's true expected renewal ARR and P(renews and expands) from
    the world's hidden state. Keys (prefixed ``oracle_size_`` by the caller's log): the rank
    correlation of the expected renewal ARR with the oracle's (``renewal_arr_spearman``), and
    "expands" (renews above the flat band, churn counting as not) scored by the model's and
    the oracle's probability: ROC AUC and ECE of each on the outcomes, and the AUC gap.
    Empty when the oracle has no renewal-ARR columns (a world written before them).
    """
    path = params.data.oracle_dir / SNAPSHOTS
    wanted = ["account_id", "as_of", "expected_renewal_arr", "expected_renewal_ratio", "p_expand"]
    if not path.exists() or not set(wanted) <= set(pd.read_parquet(path).columns):
        return {}
    oracle = pd.read_parquet(path, columns=wanted)
    rows = test.assign(p_win=p_win, row=np.arange(len(test)))
    oracle = oracle.assign(as_of=oracle["as_of"].astype(rows["as_of"].dtype))
    joined = rows.merge(oracle, on=["account_id", "as_of"], how="inner", suffixes=("", "_true"))
    if joined.empty:
        return {}
    names = list(model.expand_.feature_names_in_)
    dollars = renewal_dollars(
        joined["arr"].to_numpy(float), joined["p_win"].to_numpy(float),
        model.predict(joined[names]), model.means_,
    )  # fmt: skip
    out = {
        "rows": float(len(joined)),
        "renewal_arr_spearman": float(
            spearmanr(dollars.expected_renewal_arr, joined["expected_renewal_arr"]).statistic
        ),
        # the same without ARR's scale, which dominates the figure above: the ratio to today
        "renewal_ratio_spearman": float(
            spearmanr(
                dollars.expected_renewal_arr / np.maximum(joined["arr"].to_numpy(float), 1e-12),
                joined["expected_renewal_ratio"],
            ).statistic
        ),
    }
    known = (
        joined["renewed"].notna().to_numpy()
        & ((joined["renewed"] == 0) | joined["renewal_arr"].notna()).to_numpy()
    )
    arr = joined["arr"].to_numpy(float)
    renewal = joined["renewal_arr"].fillna(0).to_numpy(float)
    ratio = np.divide(renewal, arr, out=np.ones(len(joined)), where=arr > 0)
    expands = ((joined["renewed"] == 1).to_numpy() & (size_class(ratio) == 2))[known].astype(int)
    for who, p in (("model", dollars.p_expand[known]),
                   ("oracle", joined["p_expand"].to_numpy(float)[known])):  # fmt: skip
        out[f"{who}_expansion_auc"] = float(roc_auc_score(expands, p))
        out[f"{who}_expansion_ece"] = expected_calibration_error(expands, p)
    out["gap_expansion_auc"] = out["oracle_expansion_auc"] - out["model_expansion_auc"]
    out["expansions"] = float(expands.sum())
    log.info(
        "train: renewal size against the oracle on %d snapshots: expected renewal ARR Spearman "
        "%.3f with the truth (%.3f on its ratio to today's ARR); 'expands' AUC %.3f vs %.3f "
        "(gap %.3f), ECE %.3f vs %.3f (%d expansions)",
        len(joined), out["renewal_arr_spearman"], out["renewal_ratio_spearman"],
        out["model_expansion_auc"],
        out["oracle_expansion_auc"], out["gap_expansion_auc"], out["model_expansion_ece"],
        out["oracle_expansion_ece"], out["expansions"],
    )  # fmt: skip
    return {f"oracle_size_{k}": v for k, v in out.items()}


def true_effects(params: Params) -> pd.DataFrame | None:
    """The oracle's effect of each play on P(renew), wide: (account_id, as_of) × kind."""
    path = params.data.oracle_dir / EFFECTS
    if not path.exists():
        return None
    effects = pd.read_parquet(path, columns=["account_id", "as_of", "intervention", "effect"])
    wide = effects.pivot_table(
        index=["account_id", "as_of"], columns="intervention", values="effect", observed=True
    )
    wide.columns = [str(c) for c in wide.columns]
    return wide.reset_index().assign(as_of=lambda f: pd.to_datetime(f["as_of"]))


def effects_vs_oracle(params: Params, fit: EffectsFit) -> dict[str, float]:
    """Estimated vs true effects on the decision rows the model learned from.

    The truth of a row is the oracle's effect of a play started at its decision period's start
    (``decided_at``). Per kind: the average effect against the true mean over the same rows, its
    error and whether its interval covers the truth; per account: the rank correlation of the
    estimated and true effects and the share of true effects inside the per-account intervals.
    """
    truth = true_effects(params)
    snapshots = params.data.oracle_dir / SNAPSHOTS
    if truth is None or not snapshots.exists():
        return {}
    # the oracle's effect at decided_at is for the contract in force then: keep the same contract
    contracts = pd.read_parquet(snapshots, columns=["account_id", "as_of", "contract_id"])
    truth = truth.merge(
        contracts.assign(as_of=pd.to_datetime(contracts["as_of"])), on=["account_id", "as_of"]
    )
    rows = fit.decisions.assign(decided_at=pd.to_datetime(fit.decisions["decided_at"]))
    joined = rows.merge(
        truth.rename(columns={"as_of": "decided_at"}),
        on=["account_id", "decided_at", "contract_id"],
        how="inner",
    )
    if joined.empty:
        return {}
    model = fit.model
    modifiers = joined[model.modifier_columns_] if model.modifier_columns_ else None
    point, lo, hi = model.effects(joined["p0"].to_numpy(), joined["segment"].to_numpy(), modifiers)
    out: dict[str, float] = {
        "oracle_effect_rows": float(len(joined)),
        "oracle_effect_share_of_decisions": float(len(joined) / len(rows)),
    }
    for j, kind in enumerate(model.kinds_):
        if kind not in joined:
            continue
        true = joined[kind].to_numpy(dtype=float)
        ok = ~np.isnan(true)
        # the estimate over exactly these rows: the per-account effects (and their intervals)
        # averaged, so estimate and truth describe one population
        estimate = float(point[ok, j].mean())
        low, high = float(lo[ok, j].mean()), float(hi[ok, j].mean())
        mean = float(true[ok].mean())
        out[f"oracle_effect_{kind}_true"] = mean
        out[f"oracle_effect_{kind}_estimate"] = estimate
        out[f"oracle_effect_{kind}_lo"] = low
        out[f"oracle_effect_{kind}_hi"] = high
        out[f"oracle_effect_{kind}_error"] = estimate - mean
        out[f"oracle_effect_{kind}_sign_right"] = float(np.sign(estimate) == np.sign(mean))
        out[f"oracle_effect_{kind}_covered"] = float(low <= mean <= high)
        out[f"oracle_effect_{kind}_rank_corr"] = float(spearmanr(point[ok, j], true[ok]).statistic)
        out[f"oracle_effect_{kind}_interval_coverage"] = float(
            np.mean((lo[ok, j] <= true[ok]) & (true[ok] <= hi[ok, j]))
        )
    return out
