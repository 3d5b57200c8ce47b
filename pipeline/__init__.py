"""The edge of healthscore: I/O, config, MLflow, logging, progress and the CLI."""

import os

from pipeline.threads import wait_passively

# before any module of the package loads LightGBM or scikit-learn, hence OpenMP (pipeline.threads)
wait_passively()

# MLflow's own INFO lines ("Creating initial MLflow database tables") and its per-file download
# bars (one line per update in a scheduler's log) are not the user's business; the environment
# can still ask for them. Set before anything imports MLflow, which reads them once.
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
