"""Logging for people and schedulers: one line per stage, rich in a terminal, plain in a pipe."""

from __future__ import annotations

import logging
import sys

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

_FORMAT = "%(message)s"


def setup_logging(quiet: bool = False) -> None:
    """Configure the ``healthscore`` logger once per process (idempotent)."""
    logger = logging.getLogger("healthscore")
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    if sys.stderr.isatty():
        handler: logging.Handler = RichHandler(
            console=Console(stderr=True), show_path=False, markup=False, rich_tracebacks=False
        )
        handler.setFormatter(logging.Formatter(_FORMAT))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S%z")
        )
    logger.addHandler(handler)


def progress_enabled(quiet: bool) -> bool:
    """Progress bars only for a person at a terminal, never for schedulers or quiet runs."""
    return not quiet and sys.stderr.isatty()


def progress_bar(quiet: bool) -> Progress:
    """A transient progress bar (description, bar, done of total, elapsed), shown only where
    :func:`progress_enabled` says a person is watching."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not progress_enabled(quiet),
        transient=True,
    )
