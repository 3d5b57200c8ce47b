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
# # The world and the training set
#
# What the pipeline reads and what it learns from: the raw tables of the data contract
# (`healthscore data` writes a synthetic world; point `data.raw_dir` at your own exports
# instead), the contracts' renewal rate over time, and the point-in-time training set that
# `healthscore features` writes to `output_dir/features`. Everything here is read through the
# packages; nothing the pipeline needs is computed in this notebook.
#
# Run `make data features` (or `healthscore data && healthscore features`) first.

# %% tags=["parameters"]
PARAMS = "params.yaml"
OVERRIDES: list[str] = []

# %%
# notebooks import pipeline/ by design: the import ban is for features/ and models/

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

import features
from pipeline import io
from pipeline.config import notebook_params
from pipeline.io.catalog import load_training_set

params = notebook_params(PARAMS, OVERRIDES)  # from the repository root
pd.set_option("display.width", 120)
print(f"raw tables: {params.data.raw_dir} · outputs: {params.output_dir}")

# %% [markdown]
# ## The raw tables
#
# `io.read_raw` finds every table of the data contract, maps names and columns as
# `params.yaml` says, and validates them (a violation raises, naming table, column and
# example rows). Only `accounts` and `contracts` are required; a missing optional table
# simply yields no features of its family.

# %%
raw = io.read_raw(params.data)
tables = io.profile(raw)
data_start, data_end = io.data_start(raw), io.data_end(raw)
print(f"present: {', '.join(raw.present)}")
print(f"missing (no features of theirs): {', '.join(raw.missing) or 'none'}")
print(f"event history from {data_start.date()} to {data_end.date()}")
display(tables)

# %%
accounts = raw.frame("accounts")
contracts = raw.frame("contracts")
in_force = contracts[(contracts["start_date"] <= data_end) & (contracts["end_date"] > data_end)]
print(
    f"{len(accounts):,} accounts, {len(contracts):,} contracts; at the data's end "
    f"{len(in_force):,} contracts in force, ARR {in_force['arr'].sum():,.0f}"
)
display(accounts["segment"].value_counts(dropna=False).rename("accounts").to_frame())

# %% [markdown]
# Usage events by type, as the data names them (the usage features discover the event types
# from the data; none is hard-coded).

# %%
if raw.has("usage_events"):
    event_types = (
        raw.relation("usage_events")
        .aggregate("event_type, count(*) AS events, count(DISTINCT account_id) AS accounts")
        .df()
        .sort_values("events", ascending=False, ignore_index=True)
    )
    display(event_types)
    monthly = (
        raw.relation("usage_events")
        .aggregate("date_trunc('month', ts) AS month, count(*) AS events")
        .df()
        .sort_values("month")
    )
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.plot(monthly["month"], monthly["events"])
    ax.set(title="Usage events per month", ylabel="events")
    fig.autofmt_xdate()
else:
    print("no usage_events table")

# %%
raw.close()

# %% [markdown]
# ## Renewal rate over time
#
# The outcome of each contract as the labels see it (`features.contract_outcomes`): the
# contract's own `renewed` where given, else a successor within `features.grace_days` of its
# end. Contracts whose end (plus grace) lies after the data's end have no outcome yet.

# %%
outcomes = features.contract_outcomes(contracts, params.features.grace_days, data_end)
known = outcomes[outcomes["renewed"].notna()].merge(
    accounts[["account_id", "segment"]], on="account_id", how="left"
)
quarter = known["end_date"].dt.to_period("Q").rename("quarter")
by_quarter = known.groupby(quarter).agg(
    contracts=("contract_id", "size"),
    renewal_rate=("renewed", "mean"),
    arr=("arr", "sum"),
)
by_segment = known.pivot_table(
    index=quarter, columns="segment", values="renewed", aggfunc="mean", observed=True
)
print(
    f"{len(known):,} contracts with a known outcome, renewal rate {known['renewed'].mean():.1%}; "
    f"{int(outcomes['renewed'].isna().sum()):,} still open"
)
display(known["outcome"].value_counts().rename("contracts").to_frame())
display(by_quarter)

# %%
fig, ax = plt.subplots(figsize=(8, 3.5))
ax.plot(by_quarter.index.astype(str), by_quarter["renewal_rate"], marker="o", lw=2, label="all")
for segment in by_segment.columns:
    ax.plot(by_segment.index.astype(str), by_segment[segment], ls="--", alpha=0.7, label=segment)
ax.set(title="Renewal rate by quarter of contract end", ylabel="renewed", ylim=(0, 1))
ax.legend(loc="lower left", fontsize="small")
fig.autofmt_xdate()

# %% [markdown]
# ## The training set
#
# One row per `(account_id, as_of)` snapshot whose contract ends within the horizon
# (`features.horizon_days`), every feature computed from rows strictly before `as_of`. Snapshots
# whose outcome is not known yet are kept (unlabelled) for scoring. The fingerprint is the one
# the training run records in MLflow (`data_fingerprint`).

# %%
training = load_training_set(params.output_dir)
table, catalog = training.table, training.catalog
labelled = table["renewed"].notna()
print(
    f"{len(table):,} snapshots × {len(training.features)} features on "
    f"{table['as_of'].nunique()} as-of dates ({table['as_of'].min().date()} → "
    f"{table['as_of'].max().date()}); {int(labelled.sum()):,} labelled, renewal rate "
    f"{table.loc[labelled, 'renewed'].mean():.1%}; fingerprint {training.fingerprint}"
)
per_as_of = table.groupby("as_of").agg(
    snapshots=("account_id", "size"),
    labelled=("renewed", "count"),
    renewal_rate=("renewed", "mean"),
    arr=("arr", "sum"),
    median_days_to_renewal=("days_to_renewal", "median"),
)
display(per_as_of)

# %%
fig, ax = plt.subplots(figsize=(8, 3.5))
ax.bar(per_as_of.index, per_as_of["snapshots"], width=20, color="lightgrey", label="snapshots")
ax.bar(per_as_of.index, per_as_of["labelled"], width=20, color="tab:blue", label="labelled")
ax.set(title="Snapshots per as-of date", ylabel="snapshots")
ax.legend(loc="upper left", fontsize="small")
rate = ax.twinx()
rate.plot(per_as_of.index, per_as_of["renewal_rate"], color="tab:orange", marker="o")
rate.set(ylabel="renewal rate (labelled)", ylim=(0, 1))
fig.autofmt_xdate()

# %% [markdown]
# ## Features per component
#
# Each feature family declares the component (usage, engagement, support …) its features
# belong to; the explanation sums contributions per component. The catalog also holds the
# plain-words template each driver is shown with.

# %%
per_component = catalog.groupby("component").agg(
    features=("name", "size"),
    families=("family", lambda f: ", ".join(sorted(set(f)))),
    categorical=("categorical", "sum"),
)
missing = table.loc[labelled, training.features].isna().mean()
per_component = per_component.assign(
    mean_missing=missing.groupby(catalog.set_index("name")["component"]).mean()
).sort_values("features", ascending=False)
display(per_component)

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
shown = per_component["features"].sort_values()
ax.barh(shown.index, shown.to_numpy())
ax.set(title="Features per component", xlabel="features")
fig.tight_layout()

# %%
display(catalog[["name", "component", "dtype", "description"]].head(15))
