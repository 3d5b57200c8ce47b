"""Suite-wide fixtures."""

import os

import pytest

# first, so OpenMP threads wait passively in every test as in the CLI (pipeline.threads): the
# runtime reads its wait policy once, when a test module first loads LightGBM or scikit-learn
import pipeline  # noqa: F401


@pytest.fixture(autouse=True)
def _isolated_environment():
    """Each test starts from the same environment and leaves it as found.

    MLflow's ``set_tracking_uri`` exports ``MLFLOW_TRACKING_URI``; without this a training test
    would silently change the params every later test on the same worker loads.
    """
    saved = dict(os.environ)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield
    os.environ.clear()
    os.environ.update(saved)
