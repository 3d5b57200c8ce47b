"""What leaders plan with: expected churned and contracted ARR for the renewals coming due."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from models.scoring.monitoring import expected_auc

OVERALL = "(all)"


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
    scores: pd.DataFrame, window_days: int, rates: dict[str, float], by: list[str]
) -> pd.DataFrame:
    """Per group of ``by`` (and in total): renewals due within ``window_days``, their ARR, the
    expected churned ARR (ARR × (1 − p)) and expected contraction (ARR × p × rate)."""
    due = scores[scores["days_to_renewal"].notna() & (scores["days_to_renewal"] <= window_days)]
    segment = due["segment"].astype(object) if "segment" in due else OVERALL
    rate = pd.Series(segment, index=due.index, dtype=object).map(rates).astype(float)
    rate = rate.fillna(rates.get(OVERALL, 0.0))
    frame = due.assign(
        expected_churned_arr=due["arr"] * (1 - due["win_probability"]),
        expected_contraction_arr=due["arr"] * due["win_probability"] * rate,
        expected_renewals=due["win_probability"],
    )
    values = ["arr", "expected_churned_arr", "expected_contraction_arr", "expected_renewals"]
    parts = [frame[values].sum().to_frame().T.assign(group="total", value=OVERALL)]
    parts[0]["renewals_due"] = len(frame)
    for column in by:
        if column not in frame:
            continue
        grouped = frame.groupby(frame[column].astype(object), sort=True)
        part = grouped[values].sum().assign(renewals_due=grouped.size())
        parts.append(part.reset_index(names="value").assign(group=column))
    out = pd.concat(parts, ignore_index=True).rename(columns={"arr": "arr_due"})
    columns = ["group", "value", "renewals_due", "arr_due", "expected_churned_arr",
               "expected_contraction_arr", "expected_renewals"]  # fmt: skip
    return out[columns].assign(window_days=window_days)


def realised(
    scores: pd.DataFrame, outcomes: pd.DataFrame, window_days: int
) -> dict[str, float] | None:
    """A past run's forecast beside what happened, once every renewal in its window is known.

    ``outcomes`` holds ``contract_id``, ``renewed`` (NaN = unknown) and ``renewal_arr``.
    Returns None while some renewal of the window has no outcome yet.
    """
    due = scores[scores["days_to_renewal"] <= window_days].merge(
        outcomes[["contract_id", "renewed", "renewal_arr"]], on="contract_id", how="left"
    )
    if due.empty or due["renewed"].isna().any():
        return None
    churned = due["renewed"] == 0
    both = due["renewed"].nunique() == 2
    return {
        "renewals_due": float(len(due)),
        "expected_auc": expected_auc(due["win_probability"].to_numpy()),
        "forecast_churned_arr": float((due["arr"] * (1 - due["win_probability"])).sum()),
        "realised_churned_arr": float(due.loc[churned, "arr"].sum()),
        "forecast_renewal_rate": float(due["win_probability"].mean()),
        "realised_renewal_rate": float(due["renewed"].mean()),
        "realised_auc": float(roc_auc_score(due["renewed"], due["win_probability"]))
        if both
        else float(np.nan),
    }
