# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Explaining one account and its plays
#
# One account's page as `healthscore explain ACCOUNT_ID` reads it from the scoring and plan
# partitions (`pipeline.stages.explain.account_page`): health and its interval, the points of health
# per component, the drivers in plain words, the history and the change since the previous run,
# and the plays (the recommended plan and the effect of each play alone, with intervals).
#
# Run `make train`, then `healthscore score --as-of DATE` (twice, on two dates, for a history)
# and `healthscore plan --as-of DATE` first.

# %% tags=["parameters"]
PARAMS = "params.yaml"
OVERRIDES: list[str] = []
ACCOUNT_ID: str | None = None  # None: the top-priority account of the latest scoring run

# %%
# notebooks import pipeline/ by design: the import ban is for features/ and models/

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from pipeline.config import notebook_params
from pipeline.io import catalog
from pipeline.stages import explain

params = notebook_params(PARAMS, OVERRIDES)  # from the repository root
pd.set_option("display.width", 120)

# %% [markdown]
# ## Which account
#
# By default the first of the latest run's priority list (most ARR at risk).

# %%
runs = catalog.runs(catalog.SCORES, params.output_dir)
if not runs:
    raise FileNotFoundError(f"no scoring runs in {params.output_dir / 'scores'}: run score first")
scores = catalog.SCORED.read(params.output_dir, runs[-1])
account_id = ACCOUNT_ID or scores.sort_values("priority")["account_id"].iloc[0]
page = explain.account_page(params, account_id)
print(f"scoring runs: {', '.join(map(str, runs))}; showing {account_id} as of {page['as_of']}")
display(
    scores.sort_values("priority")
    .head(5)[["priority", "account_id", "name", "segment", "arr", "health", "band", "arr_at_risk"]]
    .set_index("priority")
)

# %% [markdown]
# ## The page
#
# As `healthscore explain` prints it, then piece by piece.

# %%
explain.render_page(page)

# %%
low, high = (round(100 * p) for p in page["interval"])
summary = {
    "name": page["name"],
    "segment": page["segment"],
    "csm": page["csm_id"],
    "health": page["health"],
    "band": page["band"],
    "interval": f"{low}–{high}",
    "win probability": round(page["win_probability"], 4),
    "arr": page["arr"],
    "arr at risk": round(page["arr_at_risk"], 2),
    "priority": page["priority"],
    "days to renewal": page["days_to_renewal"],
    "model version": page["model_version"],
}
display(pd.Series(summary, name=account_id).to_frame())

# %% [markdown]
# ## Components
#
# The exact contributions of the ensemble, in points of health, summed per component: they add
# up to the account's health minus the portfolio's base (the health of an account at the
# training average).

# %%
components = pd.Series(page["components"], name="points")
fig, ax = plt.subplots(figsize=(6, 0.4 * len(components) + 1.2))
ax.barh(
    components.index,
    components.to_numpy(),
    color=["tab:red" if p < 0 else "tab:green" for p in components],
)
ax.axvline(0, color="grey", lw=1)
ax.set(title=f"{account_id}: points of health per component", xlabel="points")
fig.tight_layout()
print(f"sum of the components: {components.sum():+.1f} points")

# %% [markdown]
# ## Drivers
#
# The largest risks and strengths, feature by feature, in the catalog's plain words.

# %%
for kind in ("risks", "strengths"):
    drivers = pd.DataFrame(page[kind], columns=["points", "text", "feature", "component", "value"])
    print(kind)
    display(drivers)

# %% [markdown]
# ## History
#
# Health in every scoring run up to this one, and what changed since the previous run.

# %%
history = pd.DataFrame(page["history"]).assign(as_of=lambda h: pd.to_datetime(h["as_of"]))
display(history)
fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(history["as_of"], history["health"], marker="o")
for threshold, band in ((params.score.bands.red_below, "red"),
                        (params.score.bands.yellow_below, "yellow")):  # fmt: skip
    ax.axhline(threshold, color=f"tab:{'red' if band == 'red' else 'olive'}", ls="--", lw=1)
ax.set(title=f"{account_id}: health per scoring run", ylabel="health", ylim=(0, 100))
fig.autofmt_xdate()
changes = page["changes"]
if changes and changes.get("health_previous") is not None:
    by_component = {
        k.removeprefix("points_").removesuffix("_change"): v
        for k, v in changes.items()
        if k.startswith("points_") and k.endswith("_change")
    }
    print(
        f"since {str(changes['previous_as_of'])[:10]}: health {changes['health_previous']:.0f} → "
        f"{changes['health']} ({changes['health_change']:+.0f}); most fell: "
        f"{changes.get('most_fell') or '-'}, most rose: {changes.get('most_rose') or '-'}"
    )
    display(pd.Series(by_component, name="change in points").sort_values().to_frame().round(1))
else:
    print("no previous run for this account")

# %% [markdown]
# ## Plays
#
# From the plan run of the same date: the plan with the highest expected ARR saved net of its
# cost (or business as usual), its lift in win probability with interval, whether it was funded
# within this period's capacity or held out for measurement, the runners-up, and the effect of
# each play alone (`*` extrapolated: outside the logged decisions).

# %%
plays = page["plays"]
if plays is None:
    print(f"no plan run on {page['as_of']} for {account_id}: run `healthscore plan` first")
else:
    plan = {
        key: plays[key]
        for key in ("best_plan", "lift", "arr_saved", "cost", "net_value", "extrapolated",
                    "funded", "recommended", "arm", "action")
    }  # fmt: skip
    plan["lift_interval"] = tuple(round(x, 4) for x in plays["lift_interval"])
    plan["arr_saved_interval"] = tuple(round(x) for x in plays["arr_saved_interval"])
    display(pd.Series(plan, name=account_id).to_frame())
    runners_up = pd.DataFrame(plays["runners_up"], columns=["plan", "arr_saved"])
    display(runners_up.dropna(subset=["plan"]))
    effects = pd.DataFrame(
        [
            {"kind": e["kind"], "effect": e["effect"], "low": e["interval"][0],
             "high": e["interval"][1], "extrapolated": e["extrapolated"]}
            for e in plays["effects"]
        ]
    )  # fmt: skip
    display(effects.round(4))

# %%
if plays is not None and len(effects):
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(effects) + 1.5))
    y = list(range(len(effects)))
    points = 100 * effects[["effect", "low", "high"]]
    below, above = points["effect"] - points["low"], points["high"] - points["effect"]
    ax.errorbar(points["effect"], y, xerr=[below, above], fmt="o", capsize=4)
    ax.axvline(0, color="grey", lw=1)
    flagged = zip(effects["kind"], effects["extrapolated"], strict=True)
    labels = [f"{kind}{' *' if extrapolated else ''}" for kind, extrapolated in flagged]
    ax.set_yticks(y, labels)
    ax.set(
        title=f"{account_id}: each play alone", xlabel="points of win probability (95 % interval)"
    )
    fig.tight_layout()
