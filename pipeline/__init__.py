"""The edge of healthscore: I/O, config, MLflow, logging, progress and the CLI."""
