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
# # Evaluating a run
#
# The training run behind the champion model, read back from MLflow: out-of-time metrics beside
# the baselines, calibration, lift, lead time, the factor audit, the effects of the plays, and
# (on the synthetic world) the comparison with the oracle. Every figure here was computed and
# logged by `healthscore train` ([`pipeline/train.py`](../pipeline/train.py)); the oracle is
# read by evaluation code alone ([`pipeline/evaluation.py`](../pipeline/evaluation.py)), and
# this notebook only reads what the run logged.
#
# Run `make train` first.

# %% tags=["parameters"]
PARAMS = "params.yaml"
OVERRIDES: list[str] = []

# %%
# notebooks import pipeline/ and read MLflow by design: the import ban is for features/, models/
import json
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display
from mlflow import MlflowClient

from pipeline.config import notebook_params
from pipeline.io import registry

params = notebook_params(PARAMS, OVERRIDES)  # from the repository root
pd.set_option("display.width", 120)
registry.configure(params.mlflow.tracking_uri, params.mlflow.experiment)
client = MlflowClient()

# %% [markdown]
# ## The run
#
# The model version behind `mlflow.alias` (the one `healthscore score` uses), its run, and
# what the run recorded about its data and its promotion.

# %%
champion = client.get_model_version_by_alias(params.mlflow.model_name, params.mlflow.alias)
run = client.get_run(champion.run_id)
metrics, tags = run.data.metrics, run.data.tags
print(
    f"{params.mlflow.model_name} v{champion.version} ({params.mlflow.alias}) · run "
    f"{run.info.run_id} · {params.mlflow.tracking_uri}"
)
facts = {
    key: tags.get(key)
    for key in ("data_fingerprint", "trained_through", "calibration", "promoted",
                "promotion_reason", "git_commit")
}  # fmt: skip
display(pd.Series(facts, name="value").to_frame())
weights = json.loads(tags.get("stack_weights", "{}"))
display(pd.Series(weights, name="stacking weight").to_frame())
seconds = {k.removeprefix("seconds_"): v for k, v in metrics.items() if k.startswith("seconds_")}
print("seconds per step:", ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))

# %% [markdown]
# ## Out of time, beside the baselines
#
# The test is the labelled snapshots of the last `train.test_days`, one horizon after the
# training period; "cv" is the ensemble's out-of-fold figure inside the training period. The
# baselines (a single LightGBM, the classic weighted scorecard) are scored on the same test.

# %%
names = [k.removeprefix("oot_") for k in metrics if k.startswith("oot_")]
baselines = sorted(
    k.removeprefix("baseline_").removesuffix("_roc_auc")
    for k in metrics
    if k.startswith("baseline_") and k.endswith("_roc_auc")
)
models = {"ensemble (cv)": "cv_", "ensemble": "oot_"}
models |= {f"{b} baseline": f"baseline_{b}_" for b in baselines}
headline = ["roc_auc", "pr_auc", "brier", "log_loss", "ece", "top_decile_lift"]
order = [m for m in headline if m in names] + sorted(m for m in names if m not in headline)
comparison = pd.DataFrame(
    {label: [metrics.get(prefix + m) for m in order] for label, prefix in models.items()},
    index=order,
)
display(comparison.loc[[m for m in headline if m in names]].round(4))
gains = {k.removeprefix("gain_"): v for k, v in metrics.items() if k.startswith("gain_")}
display(pd.Series(gains, name="ensemble's gain (higher is better)").to_frame().round(4))

# %% [markdown]
# ## Artifacts of the run
#
# The plots, the lead-time table, the factor audit, the importance and the play effects, as
# logged under `plots/` and `evaluation/`.

# %%
os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # a handful of small files
with tempfile.TemporaryDirectory(prefix="healthscore-notebook-") as tmp:
    evaluation = Path(client.download_artifacts(run.info.run_id, "evaluation", tmp))
    logged = {
        path.stem: pd.read_csv(path, index_col=0 if path.stem == "importance" else None)
        for path in evaluation.glob("*.csv")
    }
    plots = Path(client.download_artifacts(run.info.run_id, "plots", tmp))
    images = {path.stem: plt.imread(path) for path in sorted(plots.glob("*.png"))}
print("evaluation/:", ", ".join(sorted(logged)), "· plots/:", ", ".join(images))

# %% [markdown]
# ## Calibration and lift
#
# Reliability: observed renewal rate against the mean predicted win probability in
# equal-count bins (the diagonal is perfect calibration). Cumulative gains: the share of
# non-renewals caught when accounts are worked riskiest first. Below them, the precision
# (non-renewal rate) and recall among the top k % by ARR at risk.

# %%
shown = [name for name in ("reliability", "lift") if name in images]
fig, axes = plt.subplots(1, len(shown), figsize=(6 * len(shown), 5.5), squeeze=False)
for ax, name in zip(axes[0], shown, strict=True):
    ax.imshow(images[name])
    ax.set_axis_off()
fig.tight_layout()
ece = metrics.get("oot_ece", float("nan"))
print(f"calibration: {tags.get('calibration')}; out-of-time ECE {ece:.4f}")
top = [m for m in order if "_top_" in m and m.endswith("pct")]
at_the_top = comparison.loc[top, [c for c in comparison.columns if c != "ensemble (cv)"]]
at_the_top.index = pd.MultiIndex.from_tuples(
    [(float(m.rsplit("_top_", 1)[1].removesuffix("pct")), m.rsplit("_top_", 1)[0]) for m in top],
    names=["top %", "metric"],
)
display(at_the_top.sort_index().round(3))

# %% [markdown]
# ## Lead time
#
# Precision and recall of "at risk" (win probability below `train.at_risk_below`) by days
# before renewal, on the out-of-time test, and the median days of warning before a
# non-renewal.

# %%
leads = logged.get("lead_time", pd.DataFrame())
print(
    f"at risk below {params.train.at_risk_below:.0%}; median warning before a non-renewal: "
    f"{metrics.get('median_warning_days', float('nan')):.0f} days"
)
display(leads)
if not leads.empty:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    leads.plot.bar(x="days_before_renewal", y=["precision", "recall"], ax=ax, rot=0)
    ax.set(title="At risk, by days before renewal", xlabel="days before renewal", ylim=(0, 1))
    fig.tight_layout()

# %% [markdown]
# ## Factor audit
#
# Each component's scorecard score and each feature on its own: univariate AUC and rank
# correlation with renewal. A factor whose AUC stays within 0.5 ± 0.02 is flagged as not
# predictive: a metric that looks important but does not predict renewal.

# %%
audit = logged["factor_audit"]
components = audit[audit["level"] == "component"].set_index("name")
feature_audit = audit[audit["level"] == "feature"]
print(
    f"{int((~feature_audit['predictive']).sum())} of {len(feature_audit)} features not "
    "predictive on their own"
)
display(components[["auc", "spearman", "predictive"]].round(3))
display(feature_audit.head(10).round(3))
fig, ax = plt.subplots(figsize=(6, 3.5))
ordered = components["auc"].sort_values()
ax.barh(ordered.index, ordered.to_numpy() - 0.5, left=0.5)
ax.axvline(0.5, color="grey", lw=1)
ax.set(title="Univariate AUC per component", xlabel="AUC")
fig.tight_layout()

# %% [markdown]
# ## What the ensemble leans on
#
# Mean |SHAP| per feature over a sample of the test (log-odds of the ensemble), summed per
# component, and SHAP's summary of the same contributions.

# %%
importance = logged["importance"]["mean_abs_shap"]
component_of = logged["catalog"].set_index("name")["component"]
display(importance.groupby(component_of).sum().sort_values(ascending=False).to_frame().round(3))
display(importance.head(10).to_frame().round(3))
if "shap_summary" in images:
    fig, ax = plt.subplots(figsize=(7, 7))
    ax.imshow(images["shap_summary"])
    ax.set_axis_off()

# %% [markdown]
# ## Against the oracle
#
# On the synthetic world the oracle knows each snapshot's true renewal probability: the
# model's out-of-time metrics beside the oracle's on the same snapshots (`oracle_*` metrics of
# the run; a real data set has none).

# %%
oracle_rows = metrics.get("oracle_rows")
kinds = ("model", "oracle", "gap")
measured = [k.removeprefix("oracle_model_") for k in metrics if k.startswith("oracle_model_")]
measured = [m for m in headline if m in measured] + sorted(set(measured) - set(headline))
oracle = pd.DataFrame(
    {kind: [metrics.get(f"oracle_{kind}_{m}") for m in measured] for kind in kinds},
    index=measured,
)
if oracle_rows is None:
    print("no oracle in this run (real data)")
else:
    print(f"{oracle_rows:,.0f} out-of-time snapshots known to the oracle")
    display(oracle.round(4))

# %% [markdown]
# ## The plays: estimated effects, and the truth
#
# The average effect of each play on P(renew) (doubly robust, with its 95 % interval), the
# share of accounts outside the overlap, and, where the oracle knows them, the true mean effect
# over the same decision rows, the error, whether the interval covers the truth and the
# per-account rank correlation.

# %%
plays = sorted(
    k.removeprefix("effect_").removesuffix("_ate")
    for k in metrics
    if k.startswith("effect_") and k.endswith("_ate")
)
estimated = ("ate", "lo", "hi", "share_outside_overlap", "s_learner")
against = ("true", "estimate", "lo", "hi", "error", "covered", "rank_corr", "interval_coverage")
effects = pd.DataFrame(
    [
        {
            "kind": kind,
            **{key: metrics.get(f"effect_{kind}_{key}") for key in estimated},
            **{f"oracle_{key}": metrics.get(f"oracle_effect_{kind}_{key}") for key in against},
        }
        for kind in plays
    ],
    columns=["kind", *estimated, *(f"oracle_{key}" for key in against)],
).set_index("kind")
if not plays:
    print("no play effects in this run (effects disabled, or no play log)")
display(effects[list(estimated)].round(4))
if effects["oracle_true"].notna().any():
    on_the_same_rows = effects[[f"oracle_{key}" for key in against]]
    display(on_the_same_rows.rename(columns=lambda c: c.removeprefix("oracle_")).round(4))
if "effects" in logged and "segment" in logged["effects"]:
    display(logged["effects"].pivot_table(index="kind", columns="segment", values="ate").round(4))

# %% [markdown]
# Where the oracle knows the decision rows, the plot shows the estimate over exactly those rows
# beside the truth over them (one population); otherwise the average effect alone.

# %%
if plays:
    same_rows = effects["oracle_true"].notna().all()
    point, low, high = ("oracle_estimate", "oracle_lo", "oracle_hi") if same_rows else estimated[:3]
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(plays) + 1.5))
    y = list(range(len(plays)))
    ax.errorbar(
        effects[point], y, xerr=[effects[point] - effects[low], effects[high] - effects[point]],
        fmt="o", capsize=4, label="estimate (95 % CI)",
    )  # fmt: skip
    if same_rows:
        ax.scatter(effects["oracle_true"], y, marker="x", color="tab:red", zorder=3, label="true")
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(y, plays)
    ax.set(title="Average effect of each play on P(renew)", xlabel="effect on P(renew)")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
