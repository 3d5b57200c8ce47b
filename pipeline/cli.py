"""The ``healthscore`` command line: one command per stage, for people and schedulers.

Exit codes: 0 success · 2 bad params or usage, or an ``output_dir`` the outputs cannot be written
to (checked before the work) · 3 invalid input data, a stage's inputs missing (no model, no
scoring run), or an as-of date too far past the data's end (the checks that raise
:data:`pipeline.errors.INPUT_ERRORS`) · 1 anything else: a library's failure or a bug, logged
as one ERROR line naming the exception and where it was raised, with the traceback after it.
Every command takes ``--params`` and repeatable ``--set key=value``.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import traceback
from collections.abc import Callable
from datetime import date
from importlib import metadata
from inspect import Parameter, Signature
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from pipeline.config import DEFAULT_PARAMS, ConfigError, Params, flatten, load_params
from pipeline.errors import INPUT_ERRORS
from pipeline.logs import setup_logging

if TYPE_CHECKING:
    from pipeline.io import catalog

# The stages (pandas, LightGBM, MLflow …) are imported inside each command, not here: `--help`,
# `--version` and a mistyped option answer at once, before the heavy libraries load.

T = TypeVar("T")

KEYWORD_ONLY = Parameter.KEYWORD_ONLY
EXIT_FAILED = 1
EXIT_PARAMS = 2
EXIT_DATA = 3

log = logging.getLogger("healthscore")
ROOT = Path(__file__).resolve().parents[1]
OURS = tuple(ROOT / package for package in ("pipeline", "features", "models"))
MAX_CAUSE_CHARS = 500  # of an unexpected failure's message in its one-line summary

app = typer.Typer(
    name="healthscore",
    help="Account health and renewal pipeline: data → features → train → score → report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"healthscore {metadata.version('healthscore')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Options that come before the command."""


ParamsOption = Annotated[
    Path, typer.Option("--params", "-p", help="Params file (YAML).", show_default=True)
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="Override a param for this run, e.g. --set synthetic.accounts=10000 (repeatable).",
        show_default=False,
    ),
]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="Warnings and errors only (for schedulers).")
]


def _params(path: Path, overrides: list[str] | None, quiet: bool) -> Params:
    setup_logging(quiet=quiet)
    try:
        return load_params(path, overrides)
    except ConfigError as exc:
        log.error("%s", exc)
        raise typer.Exit(EXIT_PARAMS) from None


def with_params(
    quiet: bool | None = None,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command the options every command shares, written once: ``--params``, ``--set``
    and (with ``quiet=None``) ``--quiet``; the command receives the loaded params as ``cfg``
    and, if it names one, the ``quiet`` flag.

    Args:
        quiet: None to offer ``--quiet``; True or False to fix it (a page that prints itself,
            a bench that always reports).
    """

    def decorate(func: Callable[..., None]) -> Callable[..., None]:
        own = inspect.signature(func, eval_str=True).parameters.values()
        wants_quiet = any(p.name == "quiet" for p in own)
        options = [p.replace(kind=KEYWORD_ONLY) for p in own if p.name not in ("cfg", "quiet")]
        options += [
            Parameter("params", KEYWORD_ONLY, default=DEFAULT_PARAMS, annotation=ParamsOption),
            Parameter("set_", KEYWORD_ONLY, default=None, annotation=SetOption),
        ]
        if quiet is None:
            options.append(Parameter("quiet", KEYWORD_ONLY, default=False, annotation=QuietOption))

        @functools.wraps(func)
        def command(**kwargs: Any) -> None:
            path, overrides = kwargs.pop("params"), kwargs.pop("set_")
            is_quiet = kwargs.pop("quiet") if quiet is None else quiet
            cfg = _params(path, overrides, is_quiet)
            func(cfg=cfg, **({"quiet": is_quiet} if wants_quiet else {}), **kwargs)

        command.__signature__ = Signature(options)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in options}
        return command

    return decorate


def _guard(func: Callable[..., T], *args: object) -> T:
    """Run a stage; turn its failures into a clear message and an exit code.

    The user's input (the checks that raise :data:`~pipeline.errors.INPUT_ERRORS`) exits 3, or
    2 for params and an unwritable ``output_dir``, with the message alone: it says what to fix.
    Anything else is not the input's fault (a library's error, an assertion, a bug): exit 1,
    one ERROR line naming the exception and where it was raised (what a scheduler's alert
    shows), then the traceback, which whoever fixes it needs and a nightly run cannot give twice.
    """
    from pipeline.io import DataContractError
    from pipeline.io.storage import OutputNotWritable

    try:
        return func(*args)
    except DataContractError as exc:
        log.error("invalid input data: %s", exc)
        raise typer.Exit(EXIT_DATA) from None
    except ConfigError as exc:
        log.error("%s", exc)
        raise typer.Exit(EXIT_PARAMS) from None
    except OutputNotWritable as exc:
        log.error("%s (check output_dir)", exc)
        raise typer.Exit(EXIT_PARAMS) from None
    except INPUT_ERRORS as exc:  # the checks on the user's data, params and prerequisites
        log.error("%s", exc)
        raise typer.Exit(EXIT_DATA) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        log.error("%s", _unexpected(exc))
        log.error("%s", "".join(traceback.format_exception(exc)).rstrip())
        raise typer.Exit(EXIT_FAILED) from None


def _unexpected(exc: BaseException) -> str:
    """One line for a failure that is not the input's fault: the exception, where it was raised
    and, when that is in a library, the last line of ours that called it."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if frames:
        raised = frames[-1]
        where = f" (raised at {_short(raised.filename)}:{raised.lineno} in {raised.name}"
        ours = [f for f in frames if any(Path(f.filename).is_relative_to(o) for o in OURS)]
        if ours and ours[-1] is not raised:
            where += f", called from {_short(ours[-1].filename)}:{ours[-1].lineno}"
        where += ")"
    text = " ".join(str(exc).split())  # one line, whatever the message
    text = text if len(text) <= MAX_CAUSE_CHARS else text[: MAX_CAUSE_CHARS - 1] + "…"
    return (
        f"failed: {type(exc).__module__}.{type(exc).__name__}: {text}{where}; not a problem "
        "with the input: a bug or a library failure (traceback below)"
    )


def _short(filename: str) -> str:
    """A source path as a reader finds it: from the repository or from site-packages."""
    path = Path(filename)
    if "site-packages" in path.parts:
        return str(Path(*path.parts[path.parts.index("site-packages") + 1 :]))
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else filename


def _writable(cfg: Params, *outputs: catalog.Stage) -> None:
    """Before any work: exit 2, naming the path, when these stages' runs cannot be written
    under output_dir (a file in the way, a folder not writable)."""
    from pipeline.io import catalog

    _guard(catalog.check_writable, cfg.output_dir, *outputs)


def _parse_date(text: str) -> date:
    """An ``--as-of`` value, refused while the options are read (before any library loads)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"expects a date as YYYY-MM-DD, got {text!r}") from None


ScoringRunOption = Annotated[
    date | None,
    typer.Option(parser=_parse_date, help="Which scoring run (YYYY-MM-DD); default the latest."),
]


@app.command()
@with_params()
def data(
    cfg: Params,
    quiet: bool,
) -> None:
    """Generate the synthetic B2B world (raw tables + oracle) into data.raw_dir / data.oracle_dir.

    Seeded and deterministic: the same params give byte-identical files. The oracle (true
    renewal probabilities and intervention effects) goes to data.oracle_dir, apart from the
    raw tables, for evaluation code only.
    """
    from pipeline import stages

    _guard(stages.run_data, cfg, quiet)


@app.command()
@with_params()
def validate(
    cfg: Params,
    quiet: bool,
) -> None:
    """Check the raw tables against the data contract and write a profile of them.

    Reads Parquet, CSV or a DuckDB file (data.source), applies data.tables / data.columns
    remaps, and exits 3 naming the table, column and offending rows when anything is off.
    Nothing is written on failure.
    """
    from pipeline import stages
    from pipeline.io import catalog

    _writable(cfg, catalog.VALIDATION)
    _guard(stages.run_validate, cfg)


@app.command()
@with_params()
def features(
    cfg: Params,
    quiet: bool,
) -> None:
    """Build the point-in-time training set and its feature catalog into output_dir/features.

    Snapshots on the as-of grid (features.frequency) for every contract ending within
    features.horizon_days, each with the features of ten families computed from rows strictly
    before its as-of date, the renewal label beside them (empty when not known yet).
    """
    from pipeline import stages
    from pipeline.io import catalog

    _writable(cfg, catalog.FEATURES)
    _guard(stages.run_features, cfg, quiet)


@app.command()
@with_params()
def train(
    cfg: Params,
    quiet: bool,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Move the champion alias to the new version even if it is not better."
        ),
    ] = False,
) -> None:
    """Tune, fit, evaluate and register the win-probability ensemble in MLflow.

    Reads output_dir/features (run `healthscore features` first). Optuna tunes the members on
    the training period (budget: train.tuning), the stacked ensemble is calibrated out of fold,
    then evaluated out of time beside the scorecard and single-LightGBM baselines (and the
    synthetic world's oracle when data.oracle_dir has one). One MLflow run per call; the model
    is registered as mlflow.model_name and takes the alias mlflow.alias only if it beats the
    current holder on train.promotion.metric, unless --force.
    """
    from pipeline import stages
    from pipeline.lab import oracle

    _writable(cfg)  # the Optuna studies
    _guard(stages.run_train, cfg, force, oracle.judge(cfg))


@app.command()
@with_params()
def recalibrate(
    cfg: Params,
    quiet: bool,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Register and promote the correction even if it does not help beyond noise.",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Measure and log the correction; register nothing.")
    ] = False,
) -> None:
    """Correct the champion's probabilities from renewals closed since it was trained, without
    refitting its members.

    Reads output_dir/features (run `healthscore features` on newer data first) and takes the
    labelled snapshots dated after the model's last labelled date. Two numbers (a Platt map of
    the model's calibrated log-odds) are fitted to them and their effect measured cross-fitted
    over accounts, with a 95 % interval; one MLflow run logs the figures and the reliability
    diagram before and after. When the gain in log loss is above 0 beyond noise (or --force),
    the corrected model is registered as a new version and takes mlflow.alias. Exit 3 when too
    few renewals have closed (recalibrate.min_rarer_outcome of each outcome).
    """
    from pipeline import stages

    result = _guard(stages.run_recalibrate, cfg, force, dry_run)
    if result.version:
        typer.echo(f"→ {cfg.mlflow.model_name} v{result.version} ({cfg.mlflow.alias})")


@app.command()
@with_params()
def score(
    cfg: Params,
    quiet: bool,
    as_of: Annotated[
        date | None,
        typer.Option(
            parser=_parse_date,
            help="Scoring date (YYYY-MM-DD); default the data's end: the day after its latest "
            "row, or after data.cutoff (today, UTC, for data.source table).",
        ),
    ] = None,
    input_path: Annotated[
        Path | None,
        typer.Option(
            "--input", help="data.source table: the table to score (default data.prebuilt.path)."
        ),
    ] = None,
    allow_stale: Annotated[
        bool,
        typer.Option(
            "--allow-stale",
            help="Score an as-of date more than score.stale_after_days after the data's end.",
        ),
    ] = False,
) -> None:
    """Score every account with a contract in force on a date; write scores/as_of=DATE/.

    Loads the model behind mlflow.alias (or score.version), builds each account's features from
    rows strictly before the date, and writes atomically, replacing a re-run of the same date:
    scores.parquet (win probability and interval, health 0–100, band, component points, ARR at
    risk, a unique priority, top risks and strengths in plain words), drivers.parquet,
    points.parquet, changes.parquet and alerts.csv against the previous run, drift.csv and
    summary.json. Exit 3 when the data cannot give the model's features, or when the date is
    more than score.stale_after_days after the data's end (the days without data would read as
    silence and put accounts at risk) unless --allow-stale.
    """
    from pipeline import stages
    from pipeline.io import catalog

    _writable(cfg, catalog.SCORES)
    _guard(stages.run_score, cfg, as_of, input_path, allow_stale)


@app.command()
@with_params()
def plan(
    cfg: Params,
    quiet: bool,
    as_of: Annotated[
        date | None,
        typer.Option(
            parser=_parse_date, help="The scoring run to plan for (YYYY-MM-DD); default the latest."
        ),
    ] = None,
) -> None:
    """Recommend plays per account and allocate the period's capacity; write plans/as_of=DATE/.

    Reads scores/as_of=DATE/ (run `score` first) and the champion's effect model (fitted by
    `train` from the interventions log). Per account: the plan (plays from plan.catalog, up to
    plan.max_plays, within their lead-time windows) with the highest ARR saved net of cost, its
    lift in win probability with interval, an `extrapolated` flag where the log holds no
    comparable decisions, two runner-up plans; then which plans the portfolio funds within
    plan.capacity (CSM hours, executive hours, budget), the marginal value of each resource, and
    the learning loop's randomised holdout (plan.epsilon) with the propensity of every action.
    Written atomically, replacing a re-run. Exit 3 when the scores or the effect model are missing.
    """
    from pipeline import stages
    from pipeline.io import catalog

    day = as_of
    _writable(cfg, catalog.PLANS)
    if day is None:
        hint = "run `healthscore score` first"
        day = _guard(catalog.pick_run, catalog.SCORES, cfg.output_dir, None, hint)
    _guard(stages.run_plan, cfg, day)


@app.command("plan-eval")
@with_params()
def plan_eval(
    as_of: Annotated[
        date, typer.Argument(parser=_parse_date, help="The plan run to evaluate (YYYY-MM-DD).")
    ],
    cfg: Params,
    quiet: bool,
) -> None:
    """Measure a past plan run's uplift from its randomised holdout, once renewals are known.

    Joins plans/as_of=DATE/ with the renewal labels of the current training set (run
    `features` on the later data first) and prints uplift of following the plans vs the held-out
    business-as-usual accounts (with a 95% CI), uplift@k, the Qini coefficient and the
    inverse-propensity value of the recommendations; written to plans/as_of=DATE/evaluation.json.
    """
    from pipeline.io import catalog
    from pipeline.stages.plan import evaluate_plan

    _writable(cfg, catalog.PLANS)
    result = _guard(evaluate_plan, cfg, as_of)
    typer.echo(json.dumps(result, indent=2))


@app.command("evaluate-plays")
@with_params(quiet=False)
def evaluate_plays(
    cfg: Params,
    as_of: Annotated[
        date | None,
        typer.Option(
            parser=_parse_date, help="The plan run to evaluate (YYYY-MM-DD); default the latest."
        ),
    ] = None,
    seeds: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated world seeds: run the whole pipeline on each fresh world "
            "(≈ 6 min each on 2 cores) instead of evaluating the current one."
        ),
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option(help="Keep the per-seed worlds here (default: a temporary folder)."),
    ] = None,
) -> None:
    """Measure the recommendations against the synthetic world's oracle (evaluation only).

    Prints, per kind, the estimated vs true average effect (error, sign, CI coverage), the
    per-account rank correlation and interval coverage, and the policy value (true ARR saved net
    of cost) of the shipped plans beside the oracle's best (with and without the capacity),
    the same play for everyone, random plays and the naive re-prediction; logged to MLflow.
    """
    import pandas as pd

    from pipeline.lab import evaluate_plays as ev

    if seeds:
        table = _guard(ev.run_seeds, cfg, [int(s) for s in seeds.split(",")], workdir)
        typer.echo(ev.render(table))
        return
    from pipeline.stages.plan import latest_plan

    day = as_of or _guard(latest_plan, cfg)
    figures = _guard(ev.report, cfg, day)
    typer.echo(ev.render(pd.DataFrame([{"seed": cfg.synthetic.seed, **figures}])))


@app.command("simulate-loop")
@with_params(quiet=False)
def simulate_loop(
    cfg: Params,
    seeds: Annotated[str, typer.Option(help="Comma-separated world seeds.")] = "42,43,44",
    periods: Annotated[int, typer.Option(min=1, help="Months to run the loop for.")] = 12,
    epsilon: Annotated[
        float,
        typer.Option(min=0.0, max=0.99, help="Exploration share of capacity (ε = 0 runs beside)."),
    ] = 0.1,
    accounts: Annotated[
        int,
        typer.Option(
            min=200,
            help="Accounts in each world (capacity scales with it); 3000 is a quicker, noisier "
            "mode.",
        ),
    ] = 10_000,
    retrain_every: Annotated[
        int,
        typer.Option(min=0, help="Retrain both models every N periods (0: once)."),
    ] = 0,
    out: Annotated[Path, typer.Option(help="Where loop.json and loop.png go.")] = Path(
        "outputs/loop"
    ),
) -> None:
    """Run the learning loop in the synthetic world (evaluation only): train, plan with
    exploration, apply the plans in the world, step a month, for N periods per seed and ε.

    Writes OUT/loop.json (per seed, ε and period: the policy's value as a share of the
    capacity-limited oracle, the naive re-prediction's, exploration's cost, the harmful share, and
    each kind's estimate, interval and truth) and OUT/loop.png. About 2 min per period and 4 min
    per training at 10,000 accounts on 2 quiet cores (30 s and 1 min at 3,000).
    """
    import pandas as pd

    from pipeline.lab.loop import LoopSettings, run_loop, summarise

    shares = (0.0, epsilon) if epsilon > 0 else (0.0,)
    settings = LoopSettings(
        seeds=tuple(int(s) for s in seeds.split(",")),
        periods=periods,
        epsilons=shares,
        accounts=accounts,
        retrain_every=retrain_every,
    )
    result = _guard(run_loop, cfg, settings, out)
    table = pd.DataFrame(result["periods"])
    shown = table.pivot_table(
        index="period", columns=["seed", "epsilon"], values="policy_vs_capacity_oracle"
    )
    typer.echo("policy value / capacity-limited oracle, per period (columns: seed, ε)")
    typer.echo(shown.to_string(float_format=lambda v: f"{v:.3f}"))
    typer.echo("")
    typer.echo(summarise(result).T.to_string(float_format=lambda v: f"{v:.3f}"))
    typer.echo(f"→ {out / 'loop.json'}")


@app.command("rows-needed")
@with_params(quiet=False)
def rows_needed(
    cfg: Params,
    seeds: Annotated[str, typer.Option(help="Comma-separated world seeds.")] = "42,43",
    accounts: Annotated[int, typer.Option(min=200, help="Accounts in each world.")] = 3_000,
    rows: Annotated[
        str, typer.Option(help="Randomised rows per kind to try, comma-separated.")
    ] = "100,300,1000,3000,10000,30000",
    sigma: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Noise of one randomised row's outcome (the read-out's per-row deviation was "
            "0.04-0.07 in the loop's runs).",
        ),
    ] = 0.05,
    repeats: Annotated[int, typer.Option(min=1, help="Draws per number of rows.")] = 3,
    out: Annotated[Path, typer.Option(help="Where rows_needed.json and .png go.")] = Path(
        "outputs/rows-needed"
    ),
) -> None:
    """Synthetic world only: how many randomised plays per kind a per-account lift learner
    needs before the plan it drives nears the capacity-limited oracle.

    Builds each seed's loop world at its first period (trained and planned as the nightly job
    does), then values on the truth the plan on the effect model's lifts, on each kind's exact
    average spread by slope, on a LightGBM fitted to the true lifts, and on the same learner
    fitted to N noisy randomised rows per kind (a lower bound on the rows an experiment needs).
    About 5 minutes per seed at 3,000 accounts on 2 cores.
    """
    from pipeline.lab.rows_needed import run_rows_needed, summary

    result = _guard(
        run_rows_needed,
        cfg,
        [int(s) for s in seeds.split(",")],
        accounts,
        [int(r) for r in rows.split(",")],
        sigma,
        repeats,
        out,
    )
    for seed in result["seeds"]:
        typer.echo(
            f"seed {seed['seed']} ({seed['accounts']:,} accounts planned): effect model "
            f"{seed['effect_model']:.3f}, exact averages by slope {seed['exact_averages']:.3f}, "
            f"a learner fitted to the true lifts {seed['fitted_to_truth']:.3f} of the oracle"
        )
    typer.echo(summary(result).to_string(float_format=lambda v: f"{v:.3f}"))
    typer.echo(f"→ {out / 'rows_needed.json'}")


@app.command()
@with_params(quiet=True)
def explain(
    account_id: Annotated[str, typer.Argument(help="The account to explain.")],
    cfg: Params,
    as_of: ScoringRunOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a page.")] = False,
) -> None:
    """One account's page: health and band, trend over past runs, components, drivers in plain
    words, and what changed since the previous run."""
    from pipeline.stages.explain import account_page, render_page

    page = _guard(account_page, cfg, account_id, as_of)
    if as_json:
        typer.echo(json.dumps(page, indent=2, default=str))
    else:
        render_page(page)


@app.command()
@with_params()
def report(
    cfg: Params,
    quiet: bool,
    as_of: Annotated[
        date | None,
        typer.Option(
            parser=_parse_date,
            help="The scoring run to report on (YYYY-MM-DD); default the latest.",
        ),
    ] = None,
) -> None:
    """Write the CS leader's HTML report: reports/as_of=DATE/index.html (prints its path).

    Self-contained (opens from disk or any static host, no network): headline figures and their
    change since the previous run, a portfolio map (health × ARR), the priority list (sortable,
    filterable by segment, CSM and band, with search), alerts and the quarter's forecast; one
    page per account (health and interval, history, components, a waterfall of the drivers in
    plain words, what changed, recommended plays from the plan run of the same date,
    stakeholder footprint, recent activity); and the model page (version, out-of-time metrics,
    reliability diagram, lead time, drift). Written atomically, replacing a re-run. Exit 3 when
    there is no scoring run on that date.
    """
    from pipeline import stages
    from pipeline.io import catalog

    _writable(cfg, catalog.REPORTS)
    result = _guard(stages.run_report, cfg, as_of)
    typer.echo(str(result.path))


@app.command()
@with_params()
def publish(
    cfg: Params,
    quiet: bool,
    as_of: ScoringRunOption = None,
) -> None:
    """Write a scoring run (and its plan) to a database teams read by SQL.

    Tables account_health (history, keyed by account and as-of), the account_health_latest
    view, account_drivers, account_plays and alerts, with a schema version. The date's rows
    are replaced in one transaction: a re-run writes no duplicate, a failure leaves the
    previous state. publish.url is any SQLAlchemy URL (HEALTHSCORE_PUBLISH_URL overrides it);
    by default an embedded DuckDB file, output_dir/healthscore.duckdb.
    """
    from pipeline import stages

    result = _guard(stages.run_publish, cfg, as_of)
    typer.echo(f"→ {result.url}")


@app.command()
@with_params()
def notify(
    cfg: Params,
    quiet: bool,
    as_of: ScoringRunOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Write the payloads; send nothing.")
    ] = False,
) -> None:
    """Send each CSM a digest of their accounts whose health fell or band worsened: the change,
    the top reasons in plain words and the recommended play.

    To notify.webhook_url (a Slack incoming webhook, or any webhook taking JSON with
    notify.style json; HEALTHSCORE_WEBHOOK_URL overrides it), retried with backoff. Every
    payload is written to output_dir/notifications/ first; with no URL (or --dry-run) nothing
    is sent. A digest that went out is recorded, so a re-run never sends it twice.
    """
    from pipeline import stages

    result = _guard(stages.run_notify, cfg, as_of, dry_run)
    typer.echo(f"→ {result.payloads} ({result.sent} sent, {result.skipped} sent before)")


@app.command()
@with_params()
def tasks(
    cfg: Params,
    quiet: bool,
    as_of: Annotated[
        date | None,
        typer.Option(parser=_parse_date, help="Which plan run (YYYY-MM-DD); default the latest."),
    ] = None,
    due_within_days: Annotated[
        int, typer.Option(min=0, help="Days to do a play after it may start (its due date).")
    ] = 7,
) -> None:
    """Write a plan run's funded plays as CRM tasks, and the scores as CRM account fields.

    output_dir/crm/: tasks_DATE.json and .csv (owner, account, play, due date, expected lift
    and ARR saved, the reason), tasks_DATE_salesforce.csv (Task fields) and
    tasks_DATE_hubspot.csv (task properties) for the CRMs' importers, and
    account_fields_DATE.csv (health, band, top reasons). Owners and accounts are healthscore's
    ids: map them to the CRM's on import. With tasks.push (hubspot or salesforce) and the CRM's
    credentials in the environment (HUBSPOT_ACCESS_TOKEN; SALESFORCE_INSTANCE_URL and
    SALESFORCE_SESSION_ID), the tasks are also created live, never twice (output_dir/crm/
    pushed.json); needs the crm extra, which make setup installs.
    """
    from pipeline import stages

    result = _guard(stages.run_tasks, cfg, as_of, due_within_days)
    typer.echo(f"→ {result.folder} ({result.tasks} tasks for {result.accounts} accounts)")
    if result.pushed is not None:
        pushed = result.pushed
        typer.echo(f"→ {pushed.target}: {pushed.created} created, {pushed.skipped} created before")


@app.command("all")
@with_params()
def run_all(
    cfg: Params,
    quiet: bool,
) -> None:
    """Run the main job end to end: data → validate → features → train → score → plan → report.

    Scores report.backfill_runs earlier periods first so the report has trends and alerts, and
    ends by printing the report's path.
    """
    from pipeline import flow
    from pipeline.io import catalog
    from pipeline.lab import oracle

    outputs = (catalog.VALIDATION, catalog.FEATURES, catalog.SCORES, catalog.PLANS)
    _writable(cfg, *outputs, catalog.REPORTS)
    result = _guard(flow.run_all, cfg, quiet, oracle.judge(cfg))
    typer.echo(str(result.path))


@app.command()
@with_params(quiet=False)
def bench(
    cfg: Params,
    accounts: Annotated[
        list[int] | None,
        typer.Option("--accounts", "-n", help="World size(s) to measure (repeatable)."),
    ] = None,
    usage_log: Annotated[
        Path | None,
        typer.Option(
            help="Time the usage family against the reference build on this event log "
            "(python ../shared/bench/usage_reference.py gen EVENTS)."
        ),
    ] = None,
    reference_output: Annotated[
        Path | None,
        typer.Option(help="Keep the reference build's output here (default: a temporary file)."),
    ] = None,
    spark: Annotated[
        bool, typer.Option("--spark", help="Also time the usage family on Spark in local mode.")
    ] = False,
    spark_accounts: Annotated[
        int | None,
        typer.Option(help="Run the Spark build on the first N accounts of the log only."),
    ] = None,
    repeat: Annotated[
        int, typer.Option(min=1, help="Rounds of reference + usage family, back to back.")
    ] = 1,
    score_accounts: Annotated[
        list[int] | None,
        typer.Option(
            help="Score this many accounts with the champion, with and without reasons, beside "
            "LightGBM's pred_contrib floor (repeatable; run `make train` first)."
        ),
    ] = None,
    plan_accounts: Annotated[
        list[int] | None,
        typer.Option(
            help="Plan this many accounts: effects, plan search, allocation and holdout "
            "(repeatable; run `make train` first)."
        ),
    ] = None,
    report_accounts: Annotated[
        list[int] | None,
        typer.Option(
            help="Write the latest scoring run's report scaled to this many accounts and time "
            "it in headless Chromium: open, search, sort, filter, an account page (repeatable)."
        ),
    ] = None,
    chromium: Annotated[
        Path, typer.Option(help="The Chromium binary for --report-accounts (make browser).")
    ] = Path("/usr/bin/chromium"),
) -> None:
    """Print world-generation and validation speed and peak memory per world size; or, with
    --usage-log, the usage family against the shared reference build on the same log; or, with
    --score-accounts, batch scoring speed with reasons; or, with --plan-accounts, the plan
    stage's speed; or, with --report-accounts, the report's size and speed in a browser.

    Each measurement runs in its own process (its own peak RSS) in a temporary folder; nothing
    of yours is touched. World sizes default to synthetic.accounts; with --usage-log, worlds
    are measured only when --accounts is given.
    """
    from rich.console import Console
    from rich.table import Table

    from pipeline.lab.bench import run_bench

    if score_accounts:
        from pipeline.lab.bench_score import main as bench_score

        bench_score(score_accounts, cfg)
        return
    if report_accounts:
        from pipeline.lab import bench_report

        figures = _guard(bench_report.run, cfg, report_accounts, str(chromium))
        typer.echo(bench_report.render(figures))
        for row in figures:
            typer.echo(json.dumps(row))
        return
    if plan_accounts:
        from pipeline.lab import bench_plan

        figures = [bench_plan.measure(cfg, n) for n in plan_accounts]
        typer.echo(bench_plan.render(figures))
        for row in figures:
            typer.echo(json.dumps(row))
        return
    if usage_log is None or accounts:
        sizes = accounts or [cfg.synthetic.accounts]
        log.info("bench: generating and validating worlds of %s accounts", sizes)
        results = run_bench(cfg, sizes)
        table = Table(title="healthscore bench: synthetic world")
        columns = ("accounts", "rows", "generate_s", "rows_per_s", "validate_s", "peak_rss_mb")
        for column in columns:
            table.add_column(column, justify="right")
        for row in results:
            table.add_row(
                *(f"{row[c]:,}" if isinstance(row[c], int) else str(row[c]) for c in columns)
            )
        Console().print(table)
        for row in results:
            typer.echo(json.dumps(row))
    if usage_log is not None:
        _bench_usage(usage_log, reference_output, spark, spark_accounts, repeat)


def _bench_usage(
    events: Path,
    reference_output: Path | None,
    spark: bool,
    spark_accounts: int | None,
    repeat: int,
) -> None:
    """Run and print the usage benchmark (reference vs the family, optionally Spark)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from pipeline.lab.bench import run_usage_bench

    log.info("bench: reference build and usage family on %s (%d round(s))", events, repeat)
    try:
        rows = run_usage_bench(events, reference_output, spark, spark_accounts, repeat)
    except FileNotFoundError as exc:
        log.error("%s", exc)
        raise typer.Exit(EXIT_DATA) from None
    table = Table(title=f"healthscore bench: usage features on {events}", box=box.SIMPLE)
    headers = ("round", "build", "accounts", "events", "seconds", "peak MB", "ratio")
    for column in (*headers, "max |diff|"):
        table.add_column(
            column, justify="left" if column == "build" else "right", no_wrap=column == "build"
        )
    for row in rows:
        diff = row.get("max_abs_diff")
        table.add_row(
            str(row["round"]),
            str(row["build"]),
            f"{row['accounts']:,}",
            f"{int(row['events']) / 1e6:.1f} M",
            f"{row['seconds']}",
            f"{row['peak_rss_mb']:,}",
            "" if "ratio" not in row else f"{row['ratio']:.2f}",
            "" if diff is None else f"{diff:.1e}",
        )
    Console(width=max(100, Console().width)).print(table)  # all columns, even when piped
    for row in rows:
        if "jvm_rss_mb" in row:
            sliced = f"; a slice of {row['accounts']:,} accounts, not the whole log"
            typer.echo(
                f"Spark (local[2], the cost of the scale-out path): peak RSS = driver "
                f"{row['driver_rss_mb']:,} MB + JVM {row['jvm_rss_mb']} MB; session start "
                f"{row['startup_s']} s not included; days since last are to the second there "
                "(unix_timestamp), hence a difference of about 1e-5 days"
                + (sliced if spark_accounts else "")
            )
    typer.echo(
        "ratio: the family's seconds over the reference's in the same round (target <= 1.0); "
        "max abs diff over the features both compute (counts, quantity sums, days since last, "
        "30-vs-90 trend)"
    )
    for row in rows:
        typer.echo(json.dumps(row))


@app.command("signal-check")
@with_params(quiet=False)
def signal_check(
    cfg: Params,
    test_days: Annotated[int, typer.Option(help="Length of the out-of-time test period.")] = 180,
) -> None:
    """Synthetic world only: a plain LightGBM on the training set, out of time, beside the oracle.

    Reads output_dir/features (run `healthscore features` first) and data.oracle_dir, and prints
    both ROC AUCs on the same test snapshots, and the ceiling: a LightGBM fitted to the oracle's
    own probability on the training snapshots, the best these features allow.
    """
    from pipeline.lab import oracle

    result = _guard(oracle.run_signal_check, cfg, test_days)
    typer.echo(
        f"model AUC {result.model_auc:.3f}  oracle AUC {result.oracle_auc:.3f}  "
        f"gap {result.gap:.3f}  ({result.test_rows:,} test snapshots from {result.test_from})\n"
        f"ceiling AUC {result.ceiling_auc:.3f}  gap {result.ceiling_gap:.3f}  (the oracle's "
        "own probability learned from the features: what they carry at best)"
    )


@app.command("params")
@with_params(quiet=True)
def show_params(
    cfg: Params,
) -> None:
    """Print the effective params (file + environment + --set), one dotted key per line."""
    for key, value in flatten(cfg).items():
        typer.echo(f"{key} = {value}")


def main() -> None:
    """Console-script entry point (also ``python -m pipeline``)."""
    app(prog_name="healthscore")
