"""The synthetic world: contract-shaped, deterministic, leak-free, and believable."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from pipeline import synthetic
from pipeline.config import Params, load_params
from pipeline.io.schema import TABLES

ROOT = Path(__file__).resolve().parents[2]
SMALL = [
    "synthetic.accounts=400",
    "synthetic.history_months=24",
    "synthetic.prehistory_months=12",
    "synthetic.chunk_accounts=150",
]


def small_params(tmp: Path, *extra: str) -> Params:
    return load_params(
        ROOT / "params.yaml",
        [*SMALL, f"data.raw_dir={tmp}/raw", f"data.oracle_dir={tmp}/oracle", *extra],
    )


def make_world(tmp: Path, *extra: str) -> tuple[Params, synthetic.WorldSummary]:
    params = small_params(tmp, *extra)
    summary = synthetic.write_world(
        params.synthetic, params.features, params.data.raw_dir, params.data.oracle_dir
    )
    return params, summary


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("world"))


def read(params: Params, table: str) -> pd.DataFrame:
    return pd.read_parquet(params.data.raw_dir / f"{table}.parquet")


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_writes_every_contract_table_with_its_columns(world):
    # assignments exist only where an external policy assigned arms (none in a plain run)
    params, summary = world
    assert set(summary.rows) == set(TABLES) - {"assignments"}
    assert not (params.data.raw_dir / "assignments.parquet").exists()
    for name in summary.rows:
        spec = TABLES[name]
        frame = read(params, name)
        assert set(spec.column_names) <= set(frame.columns), name
        assert summary.rows[name] == len(frame) > 0, name


def test_same_params_give_byte_identical_files_and_a_new_seed_changes_them(tmp_path, world):
    params, _ = world
    again, _ = make_world(tmp_path / "again")
    assert digest(again.data.raw_dir) == digest(params.data.raw_dir)
    assert digest(again.data.oracle_dir) == digest(params.data.oracle_dir)
    other, _ = make_world(tmp_path / "other", "synthetic.seed=7")
    assert (
        digest(other.data.raw_dir)["accounts.parquet"]
        != digest(params.data.raw_dir)["accounts.parquet"]
    )


def test_chunk_size_changes_nothing_but_event_draws(tmp_path, world):
    # accounts, contracts and the oracle come from the one simulation, whatever the chunking
    params, _ = world
    rechunked, _ = make_world(tmp_path / "rechunk", "synthetic.chunk_accounts=400")
    for name in ("accounts.parquet", "contracts.parquet", "interventions.parquet"):
        assert digest(rechunked.data.raw_dir)[name] == digest(params.data.raw_dir)[name]
    assert (
        digest(rechunked.data.oracle_dir)["snapshots.parquet"]
        == digest(params.data.oracle_dir)["snapshots.parquet"]
    )


def test_csv_format_writes_the_same_tables(tmp_path):
    params, summary = make_world(tmp_path, "synthetic.accounts=60", "synthetic.format=csv")
    for name in summary.rows:
        frame = pd.read_csv(params.data.raw_dir / f"{name}.csv")
        assert len(frame) == summary.rows[name], name


def test_keys_are_unique_and_every_row_names_a_known_account(world):
    params, summary = world
    accounts = set(read(params, "accounts")["account_id"])
    for name in summary.rows:
        spec = TABLES[name]
        frame = read(params, name)
        assert set(frame["account_id"]) <= accounts, name
        if spec.key:
            assert not frame.duplicated(list(spec.key)).any(), name


def test_each_csm_has_one_name(world):
    params, _ = world
    accounts = read(params, "accounts")
    names = accounts.groupby("csm_id")["csm_name"].nunique()
    assert (names == 1).all() and accounts["csm_name"].notna().all()
    assert not accounts["csm_name"].str.contains("_").any(), "a name, not an id"


def test_events_lie_inside_the_history_and_the_customer_life(world):
    params, _ = world
    end = pd.Timestamp(params.synthetic.end_date, tz="UTC")
    start = end - pd.DateOffset(months=params.synthetic.history_months)
    contracts = read(params, "contracts")
    accounts = read(params, "accounts").set_index("account_id")
    churned = contracts[contracts["renewed"].eq(False)]
    last_day = pd.to_datetime(churned.groupby("account_id")["end_date"].max()).dt.tz_localize("UTC")
    for name, column in (
        ("usage_events", "ts"),
        ("support_tickets", "opened_at"),
        ("surveys", "sent_at"),
        ("activities", "ts"),
        ("sentiment", "ts"),
        ("interventions", "ts"),
    ):
        times = read(params, name)[["account_id", column]]
        assert times[column].min() >= start, name
        assert times[column].max() < end, name
        created = accounts.loc[times["account_id"], "created_at"].to_numpy()
        assert (times[column].to_numpy() >= created).all(), name
        ended = times["account_id"].map(last_day)
        after_churn = times[column] >= ended
        assert not after_churn.any(), f"{name}: {after_churn.sum()} rows after the churn"


def test_contracts_chain_and_their_outcomes_agree_with_succession(world):
    params, _ = world
    contracts = read(params, "contracts").sort_values(["account_id", "start_date"])
    assert (contracts["end_date"] > contracts["start_date"]).all()
    assert (contracts["arr"] >= 0).all()
    end = pd.Timestamp(params.synthetic.end_date)
    # an outcome is known exactly for contracts that ended before the data's end
    ended = pd.to_datetime(contracts["end_date"]) < end
    assert contracts.loc[ended, "renewed"].notna().all()
    assert contracts.loc[~ended, "renewed"].isna().all()
    nxt = contracts.groupby("account_id")["start_date"].shift(-1)
    gap = (pd.to_datetime(nxt) - pd.to_datetime(contracts["end_date"])).dt.days
    renewed = contracts["renewed"].eq(True)
    grace = pd.Timedelta(days=params.features.grace_days)
    successor_due = pd.to_datetime(contracts["end_date"]) + grace < end
    assert gap[renewed & successor_due].between(0, params.features.grace_days).all()
    assert gap[contracts["renewed"].eq(False)].isna().all(), "a churned contract has a successor"
    assert (contracts.loc[renewed, "renewal_arr"] > 0).all()
    assert (contracts.loc[contracts["renewed"].eq(False), "renewal_arr"] == 0).all()


def test_contracts_include_monthly_annual_and_multi_year_terms(world):
    params, _ = world
    contracts = read(params, "contracts")
    months = pd.to_datetime(contracts["end_date"]).dt.to_period("M").astype(int) - pd.to_datetime(
        contracts["start_date"]
    ).dt.to_period("M").astype(int)
    assert {1, 12, 24} <= set(months)


def test_oracle_snapshots_follow_the_grid_and_the_horizon(world):
    params, _ = world
    snapshots = pd.read_parquet(params.data.oracle_dir / "snapshots.parquet")
    contracts = read(params, "contracts").set_index("contract_id")
    assert not snapshots.duplicated(["account_id", "as_of", "contract_id"]).any()
    assert snapshots["p_renew"].between(0, 1, inclusive="neither").all()
    assert (snapshots["as_of"].dt.day == 1).all(), "monthly grid starts each month"
    horizon = pd.Timedelta(days=params.features.horizon_days)
    ahead = snapshots["end_date"] - snapshots["as_of"]
    assert ((ahead > pd.Timedelta(0)) & (ahead <= horizon)).all()
    assert set(snapshots["contract_id"]) <= set(contracts.index)
    joined = contracts.loc[snapshots["contract_id"]]
    assert (pd.to_datetime(joined["start_date"]).to_numpy() <= snapshots["as_of"].to_numpy()).all()
    effects = pd.read_parquet(params.data.oracle_dir / "effects.parquet")
    assert len(effects) == len(snapshots) * len(synthetic.world.INTERVENTIONS)


def test_oracle_is_kept_apart_from_the_raw_tables(world):
    params, summary = world
    raw_files = {p.name for p in params.data.raw_dir.iterdir()}
    assert raw_files == {f"{name}.parquet" for name in summary.rows}
    assert "p_renew" not in read(params, "contracts").columns


def test_a_failed_generation_leaves_the_previous_world_intact(tmp_path, monkeypatch):
    params, _ = make_world(tmp_path, "synthetic.accounts=50")
    before = digest(params.data.raw_dir)

    def boom(*_args, **_kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthetic, "make_oracle", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        make_world(tmp_path, "synthetic.accounts=60")
    assert digest(params.data.raw_dir) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["oracle", "raw"], "temp dirs left"


def test_intervention_effects_are_heterogeneous_with_harm_where_relationship_is_good():
    n = 4
    effects = synthetic.world.intervention_effects(
        health=np.array([-1.0, 1.0, 1.0, -1.0]),
        size=np.array([0.0, 0.0, 1.0, 1.0]),
        adoption=np.array([-1.0, 1.0, 1.0, -1.0]),
        champion_recent=np.array([0.0, 0.0, 0.0, 1.0]),
        budget=np.array([0.0, 0.0, 0.0, 1.0]),
        recent_exec=np.zeros(n, dtype=bool),
        recent_review=np.zeros(n, dtype=bool),
    )
    kinds = list(synthetic.world.INTERVENTIONS)
    csm_change = effects[:, kinds.index("csm_change")]
    assert csm_change[0] > 0 > csm_change[1] > csm_change[2], (
        "harms good relationships, more in big accounts"
    )
    exec_call = effects[:, kinds.index("exec_call")]
    assert exec_call[3] > exec_call[2] > exec_call[0], "exec calls pay off in large accounts"
    training = effects[:, kinds.index("training")]
    assert training[0] > 3 * training[1], "training helps where adoption is low"
    discount = effects[:, kinds.index("discount")]
    assert discount[3] > 5 * discount[0], "discounts matter under budget stress"
    redundant = synthetic.world.intervention_effects(
        np.zeros(1), np.ones(1), np.zeros(1), np.zeros(1), np.zeros(1),
        recent_exec=np.ones(1, dtype=bool), recent_review=np.zeros(1, dtype=bool),
    )  # fmt: skip
    alone = synthetic.world.intervention_effects(
        np.zeros(1), np.ones(1), np.zeros(1), np.zeros(1), np.zeros(1),
        recent_exec=np.zeros(1, dtype=bool), recent_review=np.zeros(1, dtype=bool),
    )  # fmt: skip
    review = kinds.index("strategic_review")
    assert redundant[0, review] == pytest.approx(alone[0, review] / 2)


def test_renewal_probability_matches_a_monte_carlo_of_the_dynamics():
    # given one account's state, the closed form equals simulating its future (no shocks case)
    rng = np.random.default_rng(0)
    w = synthetic.world
    mu, h0, steps, base = 0.2, -0.5, 4, 1.0
    mean, var = synthetic.oracle.future_health(
        np.array([h0]), np.array([mu]), np.array([steps]), np.array([0.0]), np.array([False])
    )
    draws = 200_000
    h = np.full(draws, h0)
    for _ in range(steps):
        cut = rng.random(draws) < w.BUDGET_HAZARD
        h = mu + w.RHO * (h - mu) + rng.normal(0, w.SIGMA, draws) - w.BUDGET_SHOCK * cut
    renewed = base + w.BETA * h + rng.normal(0, 1, draws) > 0
    p = synthetic.oracle.renewal_probability(np.array([base]), np.zeros(1), mean, var)
    assert p[0] == pytest.approx(renewed.mean(), abs=0.005)


@pytest.mark.slow
def test_the_default_world_is_believable(tmp_path_factory):
    """Realism figures the README states, on the default world (10,000 accounts)."""
    tmp = tmp_path_factory.mktemp("default")
    params = load_params(
        ROOT / "params.yaml", [f"data.raw_dir={tmp}/raw", f"data.oracle_dir={tmp}/oracle"]
    )
    summary = synthetic.write_world(
        params.synthetic, params.features, params.data.raw_dir, params.data.oracle_dir
    )
    c = summary.checks
    # renewal of annual and multi-year contracts per segment; monthly churn per month
    assert 0.75 <= c["renewal_rate_smb"] <= 0.90
    assert 0.85 <= c["renewal_rate_mid_market"] <= 0.97
    assert 0.88 <= c["renewal_rate_enterprise"] <= 0.99
    assert 0.015 <= c["monthly_churn_rate"] <= 0.06
    # confounding: CSMs treat accounts in trouble, so the treated renew less though plays help
    assert c["health_gap_treated"] < -0.3
    assert c["naive_renewal_gap"] < -0.03
    assert c["mean_true_effect_applied"] > 0.05
    assert c["effect_harm_share_csm_change"] > 0.2
    # the signals move before churn
    assert c["health_drift_before_churn"] < c["health_drift_before_renewal"] - 0.1
    # the oracle is calibrated and informative
    assert abs(c["oracle_mean_p"] - c["label_rate"]) < 0.03
    assert c["oracle_auc"] > 0.75

    # observable: usage per seat falls in the quarter before a churn, not before a renewal
    con = duckdb.connect()
    raw = params.data.raw_dir
    drift = (
        con.sql(
            f"""
        with ended as (
            select account_id, end_date::timestamptz as end_ts, renewed, seats
            from '{raw}/contracts.parquet'
            where renewed is not null and end_date >= date '2024-06-01'
        ),
        windows as (
            select e.renewed, e.account_id, e.end_ts,
                count(*) filter (where u.ts >= e.end_ts - interval 90 day) as recent,
                count(*) filter (where u.ts < e.end_ts - interval 180 day) as earlier
            from ended e join '{raw}/usage_events.parquet' u using (account_id)
            where u.ts < e.end_ts and u.ts >= e.end_ts - interval 270 day
            group by all
        )
        select renewed, avg(recent / greatest(earlier, 1)) as ratio from windows group by 1
        """
        )
        .df()
        .set_index("renewed")["ratio"]
    )
    assert drift.loc[False] < 0.85 * drift.loc[True], drift.to_dict()

    # observable: a champion recorded as gone in the half year before the end predicts churn
    gone = (
        con.sql(
            f"""
        select c.renewed, avg((exists (
            select 1 from '{raw}/contacts.parquet' p
            where p.account_id = c.account_id and p.persona = 'champion'
              and p.left_at < c.end_date::timestamptz
              and p.left_at >= c.end_date::timestamptz - interval 180 day))::int) as share
        from '{raw}/contracts.parquet' c where c.renewed is not null group by 1
        """
        )
        .df()
        .set_index("renewed")["share"]
    )
    assert gone.loc[False] > 1.5 * gone.loc[True], gone.to_dict()


def test_the_spine_reproduces_the_oracles_snapshots_and_labels(world):
    # given the world's contracts, when the features' spine is built on the oracle's grid
    from features.spine import as_of_grid, make_training_spine

    params, _ = world
    contracts = read(params, "contracts")
    contracts = contracts.assign(
        start_date=pd.to_datetime(contracts["start_date"]),
        end_date=pd.to_datetime(contracts["end_date"]),
    )
    oracle = pd.read_parquet(params.data.oracle_dir / "snapshots.parquet")
    end = pd.Timestamp(params.synthetic.end_date)
    grid = as_of_grid(oracle["as_of"].min(), end, params.features.frequency)
    spine = make_training_spine(
        contracts, grid, params.features.horizon_days, params.features.grace_days, end
    )
    # then the snapshots are the same, and every known label agrees with the world's outcome
    keys = ["account_id", "as_of", "contract_id"]
    merged = spine.merge(
        oracle.assign(as_of=oracle["as_of"].astype(spine["as_of"].dtype)), on=keys, how="outer",
        indicator=True, suffixes=("", "_oracle"),
    )  # fmt: skip
    share_matched = (merged["_merge"] == "both").mean()
    assert share_matched > 0.99, merged["_merge"].value_counts().to_dict()
    known = merged[(merged["_merge"] == "both") & merged["renewed"].notna()]
    assert len(known) > 100
    assert (known["renewed"] == known["renewed_oracle"].astype(float)).all()
