"""Stage outputs on disk: one Hive-style partition per as-of date, written atomically (built
under a temporary sibling, then renamed into place).

A crash leaves the previous state intact; a re-run replaces the target whole.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``target`` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def partition(root: Path, as_of: date) -> Path:
    """One as-of date's folder under a stage's root, Hive-style: ``root/as_of=YYYY-MM-DD``."""
    return root / f"as_of={as_of.isoformat()}"


def partition_dates(root: Path, marker: str) -> list[date]:
    """The as-of dates under ``root`` whose partition holds the file ``marker``, oldest first
    (a partition without it is one a crash or another tool left behind)."""
    if not root.exists():
        return []
    return sorted(
        date.fromisoformat(p.name.removeprefix("as_of="))
        for p in root.glob("as_of=*")
        if (p / marker).exists()
    )
