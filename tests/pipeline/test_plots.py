"""The SHAP summary of a training run: the same picture every run, whoever seeded numpy."""

from __future__ import annotations

import io
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pipeline.io import plots


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(3)
    features = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    contributions = features * [0.5, -0.2, 0.1]
    np.random.seed(7)  # noqa: NPY002 - as a library might: shap then warns unless given a generator
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        fig = plots.shap_summary(contributions, features, seed=seed)
    out = io.BytesIO()
    fig.savefig(out, format="png")
    plt.close(fig)
    return out.getvalue()


def test_the_shap_summary_is_drawn_from_its_own_seed():
    assert _png(0) == _png(0)
    assert _png(0) != _png(1)  # the beeswarm's jitter comes from the seed
