"""Figures logged with a training run: reliability diagram, lift curve, importance, SHAP summary."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def reliability_diagram(
    renewed: np.ndarray, curves: dict[str, np.ndarray], bins: int = 10
) -> Figure:
    """Observed renewal rate against mean prediction in equal-count bins, per model."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect")
    for label, p in curves.items():
        order = np.argsort(p, kind="stable")
        parts = [part for part in np.array_split(order, bins) if part.size]
        ax.plot(
            [p[part].mean() for part in parts],
            [np.asarray(renewed)[part].mean() for part in parts],
            marker="o", label=label,
        )  # fmt: skip
    low = min(float(np.min(p)) for p in curves.values())
    ax.set(xlim=(max(0, low - 0.05), 1), ylim=(max(0, low - 0.05), 1),
           xlabel="predicted win probability", ylabel="observed renewal rate",
           title="Reliability (out-of-time test)")  # fmt: skip
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def lift_curve(renewed: np.ndarray, curves: dict[str, np.ndarray]) -> Figure:
    """Share of non-renewals caught against share of accounts contacted, riskiest first."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    churn = 1 - np.asarray(renewed)
    for label, p in curves.items():
        caught = np.cumsum(churn[np.argsort(p, kind="stable")]) / max(churn.sum(), 1)
        ax.plot(np.arange(1, len(p) + 1) / len(p), caught, label=label)
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="random")
    ax.set(
        xlabel="share of snapshots, lowest win probability first",
        ylabel="share of non-renewals caught",
        title="Cumulative gains (out-of-time test)",
    )
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def importance_bar(importance: pd.Series, top: int = 25) -> Figure:
    """Mean |SHAP| in log-odds per feature, largest first."""
    shown = importance.sort_values().tail(top)
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(shown) + 1))
    ax.barh(shown.index, shown.to_numpy())
    ax.set(xlabel="mean |SHAP| (log-odds)", title="Feature importance (ensemble)")
    fig.tight_layout()
    return fig


def shap_summary(
    contributions: pd.DataFrame, features: pd.DataFrame, top: int = 20, seed: int = 0
) -> Figure:
    """SHAP's beeswarm of the ensemble's exact contributions (its jitter drawn from ``seed``:
    the same figure every run)."""
    import shap

    numeric = features.apply(
        lambda c: c.cat.codes.where(c.notna()) if isinstance(c.dtype, pd.CategoricalDtype) else c
    ).astype(float)
    plt.figure()  # a figure of its own: shap draws on the current one, which may be another plot
    shap.summary_plot(
        contributions[features.columns].to_numpy(),
        numeric,
        max_display=top,
        show=False,
        rng=np.random.default_rng(seed),
    )
    fig = plt.gcf()
    fig.suptitle("SHAP summary (ensemble log-odds)")
    fig.tight_layout()
    return fig
