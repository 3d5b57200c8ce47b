"""Stage outputs on disk: one Hive-style partition per as-of date, switched into place whole.

A stage's run (``scores/as_of=2026-11-02``, ``features``) is a symbolic link to a uniquely
named folder kept under a versions folder (``output_dir/.versions/``): a run is built there, then
the link is replaced with ``os.replace``, one atomic step on POSIX. A reader, or a crash at any
moment (SIGKILL included), finds the previous run or the new one, never neither; a re-run
replaces the run whole. Paths, ``scores/as_of=*`` globs, pandas and DuckDB follow the links;
recursive walks that do not follow links (DuckDB's ``**``, ``Path.rglob`` from ``scores/``) do
not see the runs. Whatever a killed run left behind is removed at the next write to the same
folder (a writer is known by its process id, so a writer on another machine sharing the folder
looks dead here).

:func:`atomic_directory` keeps a plain folder (the raw world that other tools read), replaced by
two renames: a crash between them leaves no folder until the next run.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

from pipeline.errors import InputError

# ".<name>.<tmp|old|link>-<pid>-<8 hex>" beside a target (no pid: written before pids were kept)
_BESIDE = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old|link)-(?:(?P<pid>\d+)-)?[0-9a-f]{8}$")
# "<name>.<pid>-<8 hex>" under a versions folder
_VERSION = re.compile(r"^(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}$")
# the folders this process is writing now: never another writer's leftovers
_WRITING: set[Path] = set()


class OutputNotWritable(InputError, OSError):
    """A folder a run would write to cannot be created or written (checked before the work)."""


def check_writable(folder: Path) -> None:
    """Refuse, naming the path, a folder that cannot be created or written; creates nothing.

    Raises:
        OutputNotWritable: a file, a broken link or an unwritable folder is in the way.
    """
    folder = Path(folder)
    existing = folder
    try:
        while not existing.exists():
            if existing.is_symlink():
                raise OutputNotWritable(f"cannot write {folder}: {existing} is a broken link")
            if existing.parent == existing:
                break
            existing = existing.parent
        if not existing.is_dir():
            raise OutputNotWritable(f"cannot write {folder}: {existing} is a file, not a folder")
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OutputNotWritable:
        raise
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OutputNotWritable(f"cannot write {folder}: {existing}: {reason}") from exc


@contextlib.contextmanager
def switched_directory(target: Path, versions: Path) -> Iterator[Path]:
    """Yield a new folder that becomes ``target`` in one atomic step if the block succeeds.

    ``target`` becomes (or stays) a symbolic link to the new folder, made under ``versions``;
    the version it pointed to is removed after the switch. A ``target`` that is a plain folder
    (written before runs were versioned) is moved aside first: two steps, once.
    """
    target, versions = Path(target), Path(versions)
    target.parent.mkdir(parents=True, exist_ok=True)
    versions.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target.parent)
    remove_dead_versions(versions, target.parent)
    folder = versions / f"{target.name}.{_tag()}"
    folder.mkdir()
    _WRITING.add(folder)
    try:
        try:
            yield folder
            previous = _switch(target, folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    finally:
        _WRITING.discard(folder)
    if previous is not None and previous.parent == versions.resolve():
        shutil.rmtree(previous, ignore_errors=True)


def _switch(target: Path, folder: Path) -> Path | None:
    """Point ``target`` at ``folder`` (one ``os.replace``); return the version it pointed to."""
    previous = (target.parent / os.readlink(target)).resolve() if target.is_symlink() else None
    # made beside the target, so the replace never crosses file systems
    link = target.with_name(f".{target.name}.link-{_tag()}")
    _WRITING.add(link)
    try:
        link.symlink_to(os.path.relpath(folder.resolve(), target.parent.resolve()))
        if target.is_dir() and not target.is_symlink():
            old = target.with_name(f".{target.name}.old-{_tag()}")
            target.rename(old)
            previous = None
            try:
                os.replace(link, target)
            except BaseException:
                old.rename(target)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(link, target)
    finally:
        link.unlink(missing_ok=True)
        _WRITING.discard(link)
    return previous


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a temporary folder that replaces the plain folder ``target`` (two renames) only if
    the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target.parent)
    tmp = target.with_name(f".{target.name}.tmp-{_tag()}")
    tmp.mkdir()
    _WRITING.add(tmp)
    try:
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        old = target.with_name(f".{target.name}.old-{_tag()}")
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        _WRITING.discard(tmp)


def remove_leftovers(root: Path) -> list[Path]:
    """Remove what killed writers left beside their targets in ``root`` (temporary folders and
    links, folders moved aside); return what was removed."""
    if not root.is_dir():
        return []
    removed = []
    for path in sorted(root.iterdir()):
        found = _BESIDE.match(path.name)
        if found and not _is_being_written(path, found["pid"]):
            _remove(path)
            removed.append(path)
    return removed


def remove_dead_versions(versions: Path, links: Path) -> list[Path]:
    """Remove the versions under ``versions`` that no link in ``links`` points to and whose
    writer is gone; return what was removed."""
    if not versions.is_dir():
        return []
    dead = [
        p
        for p in sorted(versions.iterdir())
        if (found := _VERSION.match(p.name)) and not _is_being_written(p, found["pid"])
    ]
    if not dead:
        return []
    # read after the writers are known dead: a dead writer moves no link any more
    linked = {(links / os.readlink(p)).resolve() for p in links.iterdir() if p.is_symlink()}
    removed = [p for p in dead if p.resolve() not in linked]
    for path in removed:
        _remove(path)
    return removed


def _tag() -> str:
    """Unique per write, and names its writer: ``<pid>-<8 hex>``."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _is_being_written(path: Path, pid: str | None) -> bool:
    if path in _WRITING:
        return True
    if pid is None or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except (OverflowError, OSError):
        return False
    return True


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """A scratch path beside ``path`` to write; renamed onto ``path`` when the block ends
    without error, removed otherwise: the file appears whole or not at all."""
    scratch = path.with_name(f".{path.name}.tmp-{_tag()}")
    try:
        yield scratch
        scratch.replace(path)
    finally:
        scratch.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` whole or not at all (:func:`atomic_file`)."""
    with atomic_file(path) as scratch:
        scratch.write_text(text, encoding="utf-8")
    return path


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
