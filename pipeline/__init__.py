"""The edge of healthscore: I/O, config, MLflow, logging, progress and the CLI."""

from pipeline.threads import wait_passively

# before any module of the package loads LightGBM or scikit-learn, hence OpenMP (pipeline.threads)
wait_passively()
