"""``python -m pipeline``: the healthscore command line."""

from pipeline.cli import main

main()
