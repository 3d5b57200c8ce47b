"""Running healthscore unattended: stale dates refused, unwritable outputs refused before the
work, runs switched into place in one step (a killed run leaves the previous one), and data
shown in the terminal as plain text."""

from __future__ import annotations

import io as text_io
import json
import os
import signal
import subprocess
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pandas as pd
import pytest
from pyarrow.dataset import dataset
from typer.testing import CliRunner

from pipeline import flow, stages
from pipeline.cli import EXIT_DATA, EXIT_FAILED, EXIT_PARAMS, app
from pipeline.config import load_params
from pipeline.io import catalog, registry, storage
from pipeline.shared import asof
from pipeline.stages import explain
from pipeline.stages import score as score_stage
from tests.pipeline.test_cli import ROOT, args_for

runner = CliRunner()
DATA_END = date(2026, 11, 1)  # the day after the small world's latest row (synthetic.end_date)
DAY, LATER = date(2026, 10, 1), date(2026, 11, 1)


class Stop(Exception):
    """Raised by a stand-in stage: the command got as far as the work."""


def stopped(result) -> bool:
    """The command got as far as the work: the stand-in's Stop, an unexpected failure (exit 1)."""
    return result.exit_code == EXIT_FAILED and "test_operations.Stop" in result.output


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("operations")
    result = runner.invoke(app, ["data", *args_for(tmp)])
    assert result.exit_code == 0, result.output
    return tmp


@pytest.fixture
def features_seen(monkeypatch):
    """A registered model stands in, and scoring stops where the features would be built,
    recording the as-of date it would build them for."""
    model = SimpleNamespace(trained={})
    monkeypatch.setattr(registry, "configure", lambda *args: None)
    monkeypatch.setattr(registry, "load_champion", lambda *args: (model, "1"))
    seen: list[date] = []

    def stop(data, features, model, as_of, input_path=None, raw=None):
        seen.append(as_of)
        raise Stop

    monkeypatch.setattr(asof, "features_as_of", stop)
    return seen


# 1. stale as-of dates -------------------------------------------------------------------------


def test_an_as_of_long_after_the_data_end_is_refused_and_writes_nothing(world, features_seen):
    # given data that ends on 2026-11-01
    # when scored as of two months later
    result = runner.invoke(app, ["score", "--as-of", "2027-01-01", *args_for(world)])
    # then it exits 3 saying both dates and how to opt in, before any feature is built
    assert result.exit_code == EXIT_DATA, result.output
    assert "2027-01-01" in result.output and str(DATA_END) in result.output
    assert "--allow-stale" in result.output
    assert features_seen == []
    assert not (world / "out" / "scores").exists()


def test_allow_stale_scores_a_late_date_anyway(world, features_seen):
    result = runner.invoke(
        app, ["score", "--as-of", "2027-01-01", "--allow-stale", *args_for(world)]
    )
    assert stopped(result), result.output
    assert features_seen == [date(2027, 1, 1)]


def test_a_bare_score_scores_as_of_the_data_end_not_today(world, features_seen):
    result = runner.invoke(app, ["score", *args_for(world)])
    assert stopped(result), result.output
    assert features_seen == [DATA_END]


@pytest.mark.parametrize(
    ("as_of", "extra", "scored"),
    [
        ("2026-06-01", [], True),  # a backfill
        ("2026-11-04", [], True),  # a nightly job a few days behind the export
        ("2026-11-05", [], False),
        ("2026-11-05", ["--set", "score.stale_after_days=4"], True),
    ],
)
def test_a_few_days_after_the_data_end_are_tolerated(world, features_seen, as_of, extra, scored):
    result = runner.invoke(app, ["score", "--as-of", as_of, *args_for(world, *extra)])
    if scored:
        assert stopped(result), result.output
        assert features_seen == [date.fromisoformat(as_of)]
    else:
        assert result.exit_code == EXIT_DATA, result.output
        assert features_seen == []


def test_the_data_end_is_the_cutoff_when_one_is_set(world):
    params = load_params(ROOT / "params.yaml", [*args_for(world)[3::2], "data.cutoff=2026-06-30"])
    assert score_stage.scoring_date(params) == date(2026, 7, 1)
    with pytest.raises(score_stage.StaleAsOf, match=r"data\.cutoff 2026-06-30"):
        score_stage.scoring_date(params, date(2026, 8, 1))
    assert score_stage.scoring_date(params, date(2026, 8, 1), allow_stale=True) == date(2026, 8, 1)


def test_the_main_jobs_date_is_the_data_end(world):
    # `healthscore all` scores as of the day after the data's last row, which is never refused
    params = load_params(ROOT / "params.yaml", args_for(world)[3::2])
    assert score_stage.scoring_date(params) == DATA_END == params.synthetic.end_date
    assert score_stage.scoring_date(params, DATA_END) == DATA_END


def test_plan_plans_for_the_latest_scoring_run_by_default(tmp_path, monkeypatch):
    # given scoring runs on two dates and no run today
    args = args_for(tmp_path)
    params = load_params(ROOT / "params.yaml", args[3::2])
    for day in (DAY, LATER):
        with catalog.publish(catalog.SCORES, params.output_dir, day) as folder:
            catalog.SCORED.write(folder, pd.DataFrame({"account_id": ["A1"]}))
    planned: list[date] = []
    monkeypatch.setattr(stages, "run_plan", lambda cfg, day: planned.append(day))
    # when planned without a date, then the latest run is planned for
    result = runner.invoke(app, ["plan", *args])
    assert result.exit_code == 0, result.output
    assert planned == [LATER]


# 2. outputs that cannot be written ------------------------------------------------------------

COMMANDS = {  # command → the stage function it would run
    "validate": (stages, "run_validate"),
    "features": (stages, "run_features"),
    "train": (stages, "run_train"),
    "score": (stages, "run_score"),
    "plan": (stages, "run_plan"),
    "report": (stages, "run_report"),
    "all": (flow, "run_all"),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_output_dir_that_is_a_file_is_refused_before_any_work(tmp_path, monkeypatch, command):
    # given output_dir is a file
    (tmp_path / "out").write_text("not a folder")
    module, name = COMMANDS[command]
    called = []
    monkeypatch.setattr(module, name, lambda *args, **kwargs: called.append(args))
    extra = ["--as-of", "2026-10-01"] if command in ("score", "plan") else []
    # when the command runs, then it exits 2 naming the path, and the stage never starts
    result = runner.invoke(app, [command, *extra, *args_for(tmp_path)])
    assert result.exit_code == EXIT_PARAMS, result.output
    assert f"{tmp_path / 'out'} is a file" in result.output.replace("\n", "")
    assert called == []


def test_a_file_in_place_of_the_scores_folder_is_named(tmp_path, monkeypatch):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "scores").write_text("")
    monkeypatch.setattr(stages, "run_score", lambda *args: pytest.fail("scored"))
    result = runner.invoke(app, ["score", "--as-of", "2026-10-01", *args_for(tmp_path)])
    assert result.exit_code == EXIT_PARAMS, result.output
    assert f"{tmp_path / 'out' / 'scores'} is a file" in result.output.replace("\n", "")


def test_a_folder_that_refuses_writes_is_named_and_nothing_is_created(tmp_path, monkeypatch):
    # the tests may run as root, whom permissions do not stop: the write itself is refused
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(storage.tempfile, "TemporaryFile", refuse)
    with pytest.raises(storage.OutputNotWritable, match="Permission denied") as error:
        catalog.check_writable(tmp_path / "out", catalog.SCORES)
    assert str(tmp_path) in str(error.value)
    assert list(tmp_path.iterdir()) == [], "the check creates nothing"


# 3. one-step publish --------------------------------------------------------------------------


def _run(folder: Path, label: str) -> None:
    """A complete scoring run, as files only (no pandas: it runs in a forked child too)."""
    (folder / catalog.SCORED.file).write_bytes(PARQUET[label])
    catalog.SCORE_SUMMARY.write(folder, {"label": label})


def _frame(label: str) -> pd.DataFrame:
    return pd.DataFrame({"account_id": ["A1", "A2"], "label": [label, label]})


def _parquet(label: str) -> bytes:
    buffer = text_io.BytesIO()
    _frame(label).to_parquet(buffer, index=False)
    return buffer.getvalue()


PARQUET = {label: _parquet(label) for label in ("old", "new")}


def _killed_publish(output_dir: Path, day: date, at: int) -> bool:
    """Publish the "new" run in a forked child that SIGKILLs itself at its ``at``-th rename,
    replace or symlink; True when it was killed (False: it finished first)."""
    pid = os.fork()
    if pid == 0:  # the child: no cleanup runs after the kill, as with a real SIGKILL
        try:
            calls = iter(range(1, 10_000))

            def dying(real):
                def call(*args, **kwargs):
                    if next(calls) == at:
                        os.kill(os.getpid(), signal.SIGKILL)
                    return real(*args, **kwargs)

                return call

            for name in ("rename", "replace", "symlink"):
                setattr(os, name, dying(getattr(os, name)))
            with catalog.publish(catalog.SCORES, output_dir, day) as folder:
                _run(folder, "new")
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status)


def _read_run(output_dir: Path, day: date) -> str:
    """The label of the run on ``day``, checking its files belong to one and the same run."""
    assert catalog.runs(catalog.SCORES, output_dir) == [day], "the run must still be there"
    scores = catalog.SCORED.read(output_dir, day)
    label = catalog.SCORE_SUMMARY.read(output_dir, day)["label"]
    pd.testing.assert_frame_equal(scores, _frame(label))
    return label


def test_a_run_killed_at_any_step_leaves_the_previous_run_readable(tmp_path):
    # given a published run
    out = tmp_path / "out"
    with catalog.publish(catalog.SCORES, out, DAY) as folder:
        _run(folder, "old")
    # when a re-run is killed (SIGKILL) at each of its steps in turn
    labels, step = [], 1
    while _killed_publish(out, DAY, step):
        # then the run on disk is always whole: the previous one, or the new one once switched
        labels.append(_read_run(out, DAY))
        step += 1
    assert step > 3, "the re-run has several steps to be killed at"
    assert labels[0] == "old" and _read_run(out, DAY) == "new"
    assert sorted(labels) == labels, "once switched, the new run stays"


def test_leftovers_of_killed_runs_are_removed_by_the_next_write(tmp_path):
    # given runs killed at every step, leaving their folders and links behind
    out = tmp_path / "out"
    with catalog.publish(catalog.SCORES, out, DAY) as folder:
        _run(folder, "old")
    step = 1
    while _killed_publish(out, DAY, step):
        step += 1
    for killed in range(1, step):  # and once more each, on a date of its own
        _killed_publish(out, LATER, killed)
    leftovers = [p for p in (out / "scores").iterdir() if p.name.startswith(".")]
    versions = out / catalog.VERSIONS / "scores"
    assert leftovers or len(list(versions.iterdir())) > 2, "the kills left something behind"
    # when the next run is written to the same folder
    with catalog.publish(catalog.SCORES, out, DAY) as folder:
        _run(folder, "new")
    # then only the runs remain, each one version
    names = sorted(p.name for p in (out / "scores").iterdir())
    assert all(n.startswith("as_of=") for n in names), names
    linked = {(out / "scores" / n).resolve() for n in names}
    assert set(versions.iterdir()) == linked
    assert _read_run(out, DAY) == "new"


def test_a_live_writers_folder_is_left_alone(tmp_path):
    # given a folder being written by another live process, and one by a process that died
    out = tmp_path / "out"
    versions = out / catalog.VERSIONS / "scores"
    versions.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    live = versions / f"as_of={DAY}.{os.getppid()}-0123abcd"
    gone = versions / f"as_of={DAY}.{dead.pid}-4567abcd"
    old_layout = out / "scores" / f".as_of={DAY}.tmp-89abcdef"  # written before pids were kept
    for folder in (live, gone, old_layout):
        folder.mkdir(parents=True)
    # when a run is written, then only the dead writers' leftovers go
    with catalog.publish(catalog.SCORES, out, LATER) as folder:
        _run(folder, "new")
    assert live.exists()
    assert not gone.exists() and not old_layout.exists()


def test_readers_see_the_runs_through_their_links(tmp_path):
    out = tmp_path / "out"
    for day, label in ((DAY, "old"), (LATER, "new")):
        with catalog.publish(catalog.SCORES, out, day) as folder:
            _run(folder, label)
    assert catalog.runs(catalog.SCORES, out) == [DAY, LATER]
    assert catalog.latest(catalog.SCORES, out) == LATER
    assert catalog.SCORED.exists(out, DAY)
    assert (out / "scores" / f"as_of={DAY}").is_dir()
    found = dataset(out / "scores", partitioning="hive", exclude_invalid_files=True)
    as_of = found.to_table().column("as_of").unique().to_pylist()
    assert sorted(map(str, as_of)) == [str(DAY), str(LATER)]
    glob = str(out / "scores" / "*" / catalog.SCORED.file)
    rows = duckdb.sql(f"SELECT label, as_of FROM read_parquet('{glob}', hive_partitioning=true)")
    assert sorted(map(tuple, rows.fetchall())) == [
        ("new", LATER), ("new", LATER), ("old", DAY), ("old", DAY)
    ]  # fmt: skip


def test_a_run_written_before_links_is_replaced_by_one(tmp_path):
    # given a partition written as a plain folder (before runs were versioned)
    out = tmp_path / "out"
    plain = catalog.SCORES.path(out, DAY)
    plain.mkdir(parents=True)
    _run(plain, "old")
    # when re-run, then it becomes a link to the new run, and nothing else is left
    with catalog.publish(catalog.SCORES, out, DAY) as folder:
        _run(folder, "new")
    assert plain.is_symlink() and _read_run(out, DAY) == "new"
    assert sorted(p.name for p in (out / "scores").iterdir()) == [plain.name]


# 4. data shown in the terminal ----------------------------------------------------------------

HOSTILE = "Acme \x1b[31mEvil\x1b[0m [bold red]Corp[/bold red]\nInjected line \x9b2J"


def _explainable(out: Path) -> None:
    """One scoring run of one account whose texts all come from a hostile CRM export."""
    scores = pd.DataFrame(
        {
            "account_id": ["A1"],
            "as_of": [pd.Timestamp(DAY)],
            "name": [HOSTILE],
            "segment": ["smb\x1b]0;title\x07"],
            "csm_id": ["[link=http://x]csm[/link]"],
            "arr": [1000.0],
            "health": [42],
            "band": ["red"],
            "win_probability": [0.42],
            "win_probability_low": [0.3],
            "win_probability_high": [0.5],
            "arr_at_risk": [580.0],
            "priority": [1],
            "days_to_renewal": [30.0],
            "model_version": ["1"],
            "points_usage\x1b[5m": [-3.0],
        }
    )
    drivers = pd.DataFrame(
        {
            "account_id": ["A1"],
            "kind": ["risk"],
            "rank": [1],
            "feature": ["f"],
            "component": ["usage"],
            "value": [1.0],
            "points": [-3.0],
            "text": ["industry is [blink]x[/blink]\x1b[2K\nforged"],
        }
    )
    with catalog.publish(catalog.SCORES, out, DAY) as folder:
        catalog.SCORED.write(folder, scores)
        catalog.DRIVERS.write(folder, drivers)


def test_explain_shows_crm_texts_as_plain_text(tmp_path, monkeypatch):
    # given an account whose name, segment, CSM, component and reason carry escape sequences,
    # Rich markup and line breaks
    monkeypatch.setenv("COLUMNS", "400")  # one page line per terminal line
    _explainable(tmp_path / "out")
    # when explained
    result = runner.invoke(app, ["explain", "A1", *args_for(tmp_path)])
    # then no control character reaches the terminal, markup is shown as typed, and no text
    # starts a line of its own
    assert result.exit_code == 0, result.output
    shown = result.output
    assert not [c for c in shown if (ord(c) < 32 and c != "\n") or 0x7F <= ord(c) <= 0x9F]
    assert "[bold red]Corp[/bold red]" in shown
    assert "[link=http://x]csm[/link]" in shown
    assert "[blink]x[/blink]" in shown
    lines = shown.splitlines()
    assert lines[0].startswith("Acme [31mEvil[0m [bold red]Corp[/bold red] Injected line")
    assert not [line for line in lines if line.startswith(("Injected", "forged"))]
    # and --json keeps the values as they are, escaped by JSON itself
    page = json.loads(runner.invoke(app, ["explain", "A1", "--json", *args_for(tmp_path)]).output)
    assert page["name"] == HOSTILE


def test_plain_text_leaves_ordinary_names_alone():
    for name in ("Acme Inc", "Zürich AG", "Ünal & Söhne (EMEA)", "R&D [beta", "a] b"):
        assert explain.plain_text(name) == name
    assert explain.plain_text("tab\there") == "tab here"
