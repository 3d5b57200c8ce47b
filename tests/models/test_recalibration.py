"""The recalibration's two numbers and their measured effect, on hand-made outcomes."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import ModelInputError
from models.win.recalibration import fit_correction, measure_correction


def test_a_drifted_base_rate_is_recovered_and_its_gain_measured():
    # given probabilities that were right, and a book whose log-odds all fell by 0.8
    rng = np.random.default_rng(4)
    p = rng.uniform(0.5, 0.98, 6000)
    z = np.log(p / (1 - p)) - 0.8
    renewed = (rng.random(p.size) < 1 / (1 + np.exp(-z))).astype(int)
    groups = np.arange(p.size) // 3
    c = measure_correction(p, renewed, groups, replicates=100)
    # then the correction is the shift (slope 1) within noise, and it helps beyond noise
    assert c.intercept == pytest.approx(-0.8, abs=0.12)
    assert c.slope == pytest.approx(1.0, abs=0.1)
    assert c.helps and c.low > 0 and c.ece_after < c.ece_before
    assert c.predicted_after == pytest.approx(c.realised, abs=0.01)
    assert (c.renewals, c.accounts) == (6000, 2000)
    # and on outcomes drawn from the probabilities themselves there is nothing to correct
    honest = (rng.random(p.size) < p).astype(int)
    same = measure_correction(p, honest, groups, replicates=100)
    # (fitting two numbers costs a little out of sample: the gain is at most noise)
    assert not same.helps and same.low < 0 and same.gain < 0.001
    a, b = fit_correction(p, honest)
    assert abs(a) < 0.2 and b == pytest.approx(1.0, abs=0.12)


def test_too_few_closed_renewals_are_refused_with_the_counts():
    p = np.full(200, 0.9)
    renewed = np.r_[np.zeros(8), np.ones(192)].astype(int)
    with pytest.raises(ModelInputError, match=r"200 closed renewals \(8 non-renewals, 200 "):
        measure_correction(p, renewed, np.arange(200), min_rarer=30)
