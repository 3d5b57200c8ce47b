"""What leaders plan with: expected churned and contracted ARR for the renewals coming due."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from models.renewal.size import RenewalSize
from models.scoring.monitoring import expected_auc
from models.win.metrics import expected_calibration_error, rate_interval

OVERALL = "(all)"
FORECAST_DRAWS = 2000  # draws of the renewals due behind a forecast's interval
DRAWN_AT_ONCE = 2_000_000  # renewals drawn per batch of a forecast's interval (memory)
AUC_REPLICATES = 200  # bootstrap replicates of a realised AUC


def contraction_rates(
    segment: pd.Series | None, arr: pd.Series, renewal_arr: pd.Series, renewed: pd.Series
) -> dict[str, float]:
    """Mean share of ARR lost at renewal among renewals (expansions count as 0), per segment.

    Learned from the training set's outcomes; ``(all)`` holds the rate over every renewal.
    """
    frame = pd.DataFrame(
        {"segment": OVERALL if segment is None else segment.astype(object), "arr": arr,
         "renewal_arr": renewal_arr, "renewed": renewed}
    )  # fmt: skip
    frame = frame[(frame["renewed"] == 1) & (frame["arr"] > 0) & frame["renewal_arr"].notna()]
    lost = (1 - frame["renewal_arr"] / frame["arr"]).clip(lower=0, upper=1)
    rates = lost.groupby(frame["segment"]).mean().to_dict()
    rates[OVERALL] = float(lost.mean()) if len(lost) else 0.0
    return {str(k): float(v) for k, v in rates.items()}


def renewal_forecast(
    scores: pd.DataFrame,
    window_days: int,
    rates: dict[str, float],
    by: list[str],
    seed: int = 0,
    size: RenewalSize | None = None,
) -> pd.DataFrame:
    """Per group of ``by`` (and in total): renewals due within ``window_days``, their ARR, the
    expected churned ARR (ARR × (1 − p)) with the 95 % interval the probabilities allow, and
    expected contraction (ARR × p × rate).

    With the size model (``size``, and the scores' ``expected_*`` columns it wrote), the
    contraction is the model's, and the expected expansion, the expected renewal ARR and the
    net and gross revenue retention (NRR = renewal ARR / ARR due; GRR = the same with each
    renewal capped at its ARR) come with their 95 % intervals: every renewal due drawn from its
    own mixture (churn at 1 − p; else contraction, flat or expansion at the model's
    probabilities, the ratio drawn from that class's training ratios)."""
    due = scores[scores["days_to_renewal"].notna() & (scores["days_to_renewal"] <= window_days)]
    segment = due["segment"].astype(object) if "segment" in due else OVERALL
    rate = pd.Series(segment, index=due.index, dtype=object).map(rates).astype(float)
    rate = rate.fillna(rates.get(OVERALL, 0.0))
    dollars = size is not None and "expected_renewal_arr" in due
    frame = due.assign(
        expected_churned_arr=due["arr"] * (1 - due["win_probability"]),
        expected_contraction_arr=due["expected_contraction_arr"]
        if dollars
        else due["arr"] * due["win_probability"] * rate,
        expected_renewals=due["win_probability"],
    )
    values = ["arr", "expected_churned_arr", "expected_contraction_arr", "expected_renewals"]
    if dollars:
        values += ["expected_expansion_arr", "expected_renewal_arr"]
    parts = [frame[values].sum().to_frame().T.assign(group="total", value=OVERALL)]
    parts[0]["renewals_due"] = len(frame)
    for column in by:
        if column not in frame:
            continue
        grouped = frame.groupby(frame[column].astype(object), sort=True)
        part = grouped[values].sum().assign(renewals_due=grouped.size())
        parts.append(part.reset_index(names="value").assign(group=column))
    out = pd.concat(parts, ignore_index=True).rename(columns={"arr": "arr_due"})
    out["renewals_due"] = out["renewals_due"].astype(int)
    low, high = _churned_interval(frame, out, by, seed)
    out["expected_churned_arr_low"], out["expected_churned_arr_high"] = low, high
    columns = ["group", "value", "renewals_due", "arr_due", "expected_churned_arr",
               "expected_churned_arr_low", "expected_churned_arr_high",
               "expected_contraction_arr", "expected_renewals"]  # fmt: skip
    if dollars:
        share = out["arr_due"].where(out["arr_due"] > 0)
        out["forecast_nrr"] = out["expected_renewal_arr"] / share
        out["forecast_grr"] = (
            out["arr_due"] - out["expected_churned_arr"] - out["expected_contraction_arr"]
        ) / share
        for name, (low, high) in _retention_intervals(frame, out, by, seed, size).items():
            out[f"{name}_low"], out[f"{name}_high"] = low / share, high / share
        columns += ["expected_expansion_arr", "expected_renewal_arr", "forecast_nrr",
                    "forecast_nrr_low", "forecast_nrr_high", "forecast_grr", "forecast_grr_low",
                    "forecast_grr_high"]  # fmt: skip
    return out[columns].assign(window_days=window_days)


def _realised_retention(
    due: pd.DataFrame, renewed: np.ndarray, arr: np.ndarray, seed: int, size: RenewalSize
) -> dict[str, float]:
    total = pd.DataFrame({"group": ["total"], "value": [OVERALL]})
    intervals = _retention_intervals(due, total, [], seed, size)
    renewal = np.where(renewed == 1, due["renewal_arr"].fillna(0).to_numpy(dtype=float), 0.0)
    base = max(float(arr.sum()), 1e-12)
    contraction = due["expected_contraction_arr"].to_numpy(dtype=float).sum()
    churned = (arr * (1 - due["win_probability"].to_numpy(dtype=float))).sum()
    return {
        "forecast_nrr": float(due["expected_renewal_arr"].sum() / base),
        "forecast_nrr_low": float(intervals["forecast_nrr"][0][0] / base),
        "forecast_nrr_high": float(intervals["forecast_nrr"][1][0] / base),
        "realised_nrr": float(renewal.sum() / base),
        "forecast_grr": float((base - churned - contraction) / base),
        "forecast_grr_low": float(intervals["forecast_grr"][0][0] / base),
        "forecast_grr_high": float(intervals["forecast_grr"][1][0] / base),
        "realised_grr": float(np.minimum(renewal, arr).sum() / base),
    }


def _group_codes(
    due: pd.DataFrame, groups: pd.DataFrame, by: list[str]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per grouping: each renewal's group code, and each code's row in ``groups``."""
    rows = {"total": (np.zeros(len(due), dtype=int), np.array([0]))}
    for column in by:
        if column not in due:
            continue
        codes, values = pd.factorize(due[column].astype(object), sort=True)
        at = groups.index[groups["group"] == column]
        where = dict(zip(groups.loc[at, "value"], at, strict=True))
        rows[column] = (codes, np.array([where[v] for v in values]))
    return rows


def _retention_intervals(
    due: pd.DataFrame, groups: pd.DataFrame, by: list[str], seed: int, size: RenewalSize
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """95 % intervals of each group's renewal ARR (``forecast_nrr``) and of its renewal ARR
    with each renewal capped at today's ARR (``forecast_grr``), as sums: each renewal due drawn
    from its own mixture; one set of draws shared by every grouping, memory bounded."""
    n = len(groups)
    out = {"forecast_nrr": (np.zeros(n), np.zeros(n)), "forecast_grr": (np.zeros(n), np.zeros(n))}
    if not len(due):
        return out
    p = due["win_probability"].to_numpy(dtype=float)
    arr = due["arr"].to_numpy(dtype=float)
    given = np.maximum(p, 1e-12)
    down = np.clip(due["p_contract"].to_numpy(dtype=float) / given, 0, 1)
    up = np.clip(due["p_expand"].to_numpy(dtype=float) / given, 0, 1 - down)
    table = np.stack([size.quantiles_[c] for c in ("contraction", "flat", "expansion")])
    rows = _group_codes(due, groups, by)
    chunk = max(1, min(FORECAST_DRAWS, DRAWN_AT_ONCE // p.size))
    rng = np.random.default_rng(seed)
    sums: dict[str, dict[str, list[np.ndarray]]] = {k: {g: [] for g in rows} for k in out}
    for start in range(0, FORECAST_DRAWS, chunk):
        draws = min(chunk, FORECAST_DRAWS - start)
        renews = rng.random((draws, p.size)) < p
        u = rng.random((draws, p.size))
        cls = np.where(u < down, 0, np.where(u < down + (1 - down - up), 1, 2))
        ratio = table[cls, rng.integers(0, table.shape[1], (draws, p.size))]
        renewal = np.where(renews, ratio * arr, 0.0)
        for key, values in (("forecast_nrr", renewal),
                            ("forecast_grr", np.minimum(renewal, arr))):  # fmt: skip
            for name, (codes, _) in rows.items():
                width = codes.max() + 1
                sums[key][name].append(np.stack([np.bincount(codes, r, width) for r in values]))
    for key, (low, high) in out.items():
        for name, (_, positions) in rows.items():
            drawn = np.concatenate(sums[key][name])
            low[positions], high[positions] = np.quantile(drawn, [0.025, 0.975], axis=0)
    return out


def _churned_interval(
    due: pd.DataFrame, groups: pd.DataFrame, by: list[str], seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``groups``, the 95 % interval of the churned ARR its renewals allow, each an
    independent draw at its win probability (one set of draws shared by every grouping; memory
    bounded by drawing a few million renewals at a time)."""
    low, high = np.zeros(len(groups)), np.zeros(len(groups))
    if not len(due):
        return low, high
    p = due["win_probability"].to_numpy(dtype=float)
    arr = due["arr"].to_numpy(dtype=float)
    rows = _group_codes(due, groups, by)
    chunk = max(1, min(FORECAST_DRAWS, DRAWN_AT_ONCE // p.size))
    rng = np.random.default_rng(seed)
    sums: dict[str, list[np.ndarray]] = {name: [] for name in rows}
    for start in range(0, FORECAST_DRAWS, chunk):
        churned = (rng.random((min(chunk, FORECAST_DRAWS - start), p.size)) >= p) * arr
        for name, (codes, _) in rows.items():
            width = codes.max() + 1
            sums[name].append(np.stack([np.bincount(codes, r, width) for r in churned]))
    for name, (_, positions) in rows.items():
        draws = np.concatenate(sums[name])
        low[positions], high[positions] = np.quantile(draws, [0.025, 0.975], axis=0)
    return low, high


def realised(
    scores: pd.DataFrame,
    outcomes: pd.DataFrame,
    window_days: int,
    seed: int = 0,
    size: RenewalSize | None = None,
) -> dict[str, float] | None:
    """A past run's forecast beside what happened, once every renewal in its window is known.

    ``outcomes`` holds ``contract_id``, ``renewed`` (NaN = unknown) and ``renewal_arr``.
    Returns None while some renewal of the window has no outcome yet. The forecast's 95 %
    interval is what the run's own probabilities allow (each renewal an independent draw at its
    win probability): a realised figure outside it says the forecast was off, not unlucky; the
    same holds for the renewal rate (calibration in the large, per run), beside the realised
    ECE. The realised AUC's interval is a bootstrap over the renewals due. When the run wrote
    the renewal in dollars (and ``size`` is given), its forecast NRR and GRR with their 95 %
    intervals stand beside the realised ones (renewal ARR over the ARR due; GRR caps each
    renewal at its ARR).
    """
    due = scores[scores["days_to_renewal"] <= window_days].merge(
        outcomes[["contract_id", "renewed", "renewal_arr"]], on="contract_id", how="left"
    )
    if due.empty or due["renewed"].isna().any():
        return None
    renewed = due["renewed"].to_numpy(dtype=int)
    p = due["win_probability"].to_numpy(dtype=float)
    arr = due["arr"].to_numpy(dtype=float)
    total = pd.DataFrame({"group": ["total"], "value": [OVERALL]})
    (low,), (high,) = _churned_interval(due, total, [], seed)
    rng = np.random.default_rng(seed)
    rate_low, rate_high = rate_interval(p)
    out = {
        "renewals_due": len(due),
        "non_renewals": int((renewed == 0).sum()),
        "expected_auc": expected_auc(p),
        "forecast_churned_arr": float((arr * (1 - p)).sum()),
        "forecast_churned_arr_low": float(low),
        "forecast_churned_arr_high": float(high),
        "realised_churned_arr": float(arr[renewed == 0].sum()),
        "forecast_renewal_rate": float(p.mean()),
        "forecast_renewal_rate_low": rate_low,
        "forecast_renewal_rate_high": rate_high,
        "realised_renewal_rate": float(renewed.mean()),
        "realised_ece": expected_calibration_error(renewed, p),
        "realised_auc": float("nan"),
        "realised_auc_low": float("nan"),
        "realised_auc_high": float("nan"),
    }
    if size is not None and "expected_renewal_arr" in due:
        out |= _realised_retention(due, renewed, arr, seed, size)
    if 0 < renewed.sum() < renewed.size:
        aucs = []
        for _ in range(AUC_REPLICATES):
            rows = rng.integers(0, renewed.size, renewed.size)
            if 0 < renewed[rows].sum() < rows.size:
                aucs.append(roc_auc_score(renewed[rows], p[rows]))
        out["realised_auc"] = float(roc_auc_score(renewed, p))
        out["realised_auc_low"], out["realised_auc_high"] = (
            float(q) for q in np.quantile(aucs, [0.025, 0.975])
        )
    return out
