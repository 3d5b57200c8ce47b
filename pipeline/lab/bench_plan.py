"""Plans at scale: the plan stage's work for N accounts, timed step by step.

Takes the champion (with its effect model) and the training set of ``output_dir/features``
(run ``make train`` first), draws N snapshot rows from it (resampled with replacement, each a
distinct account and contract), scores them with the win model, then runs what ``healthscore
plan`` runs after the features are built: per-account effects and propensities, the plan search,
the portfolio allocation and the holdout. Figures, not assertions:
``make bench-plan ARGS="10000"`` or ``healthscore bench --plan-accounts 10000``.
"""

from __future__ import annotations

import time
from datetime import date

import numpy as np

from models.interventions import plans
from models.interventions.portfolio import make_plans
from pipeline.config import Params
from pipeline.errors import InputError
from pipeline.io import registry
from pipeline.io.catalog import load_training_set
from pipeline.shared.effects import context_frame


def measure(params: Params, accounts: int) -> dict[str, float]:
    """Plan ``accounts`` resampled snapshots in this process; return the figures."""
    registry.configure(params.mlflow.tracking_uri, params.mlflow.experiment)
    model, version = registry.load_champion(
        params.mlflow.model_name, params.mlflow.alias, params.score.version
    )
    if model.effects is None:
        raise InputError(f"model v{version} has no effect model: retrain with `make train`")
    table = load_training_set(params.output_dir).table
    rows = np.random.default_rng(0).integers(0, len(table), accounts)
    sample = table.iloc[rows].reset_index(drop=True)
    sample = sample.assign(
        account_id=[f"B{i:07d}" for i in range(accounts)],
        contract_id=[f"B{i:07d}-k1" for i in range(accounts)],
    )
    began = time.perf_counter()
    context = context_frame(sample, model.catalog, model.features)
    p = model.ensemble.predict_proba(context)[:, 1]
    score_s = time.perf_counter() - began
    columns = [c for c in ("account_id", "contract_id", "segment", "arr", "days_to_renewal")
               if c in sample]  # fmt: skip
    scores = sample[columns].assign(win_probability=p)
    began = time.perf_counter()
    out = make_plans(params.plan, model.effects, scores, context, date(2026, 1, 1))
    plan_s = time.perf_counter() - began
    frame = out.plans
    return {
        "accounts": float(accounts),
        "win_model_s": score_s,
        "plan_s": plan_s,
        "accounts_per_s": accounts / plan_s,
        "plan_space": float(out.plan_space),
        "with_plan": float((frame["best_plan"] != plans.BUSINESS_AS_USUAL).sum()),
        "funded": float(frame["funded"].sum()),
    }


def render(figures: list[dict[str, float]]) -> str:
    """The plan bench's figures as a text table, one row per book size."""
    lines = [
        "accounts   win model   plan (effects + search + allocation + holdout)   plans searched"
    ]
    for f in figures:
        lines.append(
            f"{int(f['accounts']):>9,}   {f['win_model_s']:7.1f} s   {f['plan_s']:7.1f} s "
            f"({f['accounts_per_s']:,.0f} accounts/s; {int(f['with_plan']):,} with a plan, "
            f"{int(f['funded']):,} funded)   {int(f['plan_space'])}"
        )
    return "\n".join(lines)
