"""Tiny hand-built contract tables on an in-memory DuckDB engine."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from features.config import FeaturesConfig
from pipeline.io.engines import DuckDBEngine

T = pd.Timestamp
AS_OF = T("2025-01-01")


def tiny_tables() -> dict[str, pd.DataFrame]:
    """Two accounts; A1 is busy, A2 has almost nothing. Times relative to AS_OF = 2025-01-01."""
    return {
        "accounts": pd.DataFrame(
            {
                "account_id": ["A1", "A2"],
                "name": ["Acme", "Bluebird"],
                "segment": ["smb", "enterprise"],
                "created_at": [T("2023-01-01"), T("2024-06-01")],
                "industry": ["retail", "media"],
                "region": ["emea", "apac"],
                "csm_id": ["c1", "c2"],
                "tier": ["tier_1", "tier_2"],
            }
        ),
        "contracts": pd.DataFrame(
            {
                "contract_id": ["K0", "K1", "K2"],
                "account_id": ["A1", "A1", "A2"],
                "start_date": [T("2023-01-01"), T("2024-01-01"), T("2024-06-01")],
                "end_date": [T("2024-01-01"), T("2025-01-31"), T("2025-06-01")],
                "arr": [800.0, 1000.0, 50_000.0],
                "seats": [4, 10, 100],
                "renewed": [True, None, None],
                "renewal_arr": [1000.0, None, None],
            }
        ),
        "usage_events": pd.DataFrame(
            {
                "account_id": ["A1"] * 6,
                "ts": [
                    T("2024-12-31 10:00"),
                    T("2024-12-28"),
                    T("2024-12-10"),
                    T("2024-11-15"),
                    T("2024-10-01"),
                    T("2025-01-01 00:00"),
                ],
                "event_type": ["login", "report", "login", "login", "report", "login"],
                "user_id": ["u1", "u2", "u1", "u3", "u1", "u9"],
                "quantity": [3.0, 2.0, 0.5, None, 5.0, 100.0],
            }
        ),
        "support_tickets": pd.DataFrame(
            {
                "ticket_id": ["T1", "T2", "T3"],
                "account_id": ["A1", "A1", "A1"],
                "opened_at": [T("2024-12-20"), T("2024-11-01"), T("2024-12-30")],
                "closed_at": [T("2024-12-21"), T("2024-11-03"), T("2025-01-02")],
                "priority": ["urgent", "low", "high"],
                "csat": [2.0, 4.0, 5.0],
            }
        ),
        "surveys": pd.DataFrame(
            {
                "account_id": ["A1", "A1", "A1", "A2"],
                "sent_at": [T("2024-06-01"), T("2024-09-01"), T("2024-12-20"), T("2024-09-01")],
                "responded_at": [T("2024-06-02"), T("2024-09-03"), T("2025-01-03"), pd.NaT],
                "score": [9.0, 6.0, 10.0, None],
            }
        ),
        "activities": pd.DataFrame(
            {
                "account_id": ["A1", "A1", "A1", "A1"],
                "ts": [T("2024-12-01"), T("2024-11-01"), T("2024-12-30"), T("2024-10-15")],
                "type": ["email", "email", "email", "qbr"],
                "direction": ["outbound", "outbound", "outbound", "outbound"],
                "responded": [True, False, True, None],
            }
        ),
        "contacts": pd.DataFrame(
            {
                "contact_id": ["P1", "P2", "P3", "P4"],
                "account_id": ["A1", "A1", "A1", "A2"],
                "persona": ["champion", "decision_maker", "champion", "admin"],
                "created_at": [T("2023-01-05"), T("2023-01-05"), T("2024-12-15"), T("2024-06-02")],
                "left_at": [T("2024-11-20"), T("2025-02-01"), pd.NaT, pd.NaT],
            }
        ),
        "sentiment": pd.DataFrame(
            {
                "account_id": ["A1", "A1", "A1"],
                "ts": [T("2024-10-15"), T("2024-12-15"), T("2025-01-05")],
                "rating": [4.0, 2.0, 1.0],
                "note": [None, "unhappy", None],
            }
        ),
        "invoices": pd.DataFrame(
            {
                "account_id": ["A1", "A1", "A2"],
                "due_date": [T("2024-02-01"), T("2024-12-01"), T("2024-07-01")],
                "amount": [1000.0, 250.0, 50_000.0],
                "paid_date": [T("2024-02-11"), T("2025-01-05"), T("2024-06-30")],
            }
        ),
        "opportunities": pd.DataFrame(
            {
                "account_id": ["A1", "A1", "A2"],
                "created_at": [T("2024-11-01"), T("2024-03-01"), T("2024-12-01")],
                "type": ["upsell", "cross-sell", "upsell"],
                "amount": [300.0, 200.0, 9000.0],
                "closed_at": [pd.NaT, T("2024-04-01"), T("2025-01-10")],
                "stage": ["open", "closed_won", "closed_lost"],
            }
        ),
        "interventions": pd.DataFrame(
            {
                "account_id": ["A1", "A1", "A2"],
                "ts": [T("2024-12-15"), T("2024-03-01"), T("2025-01-01")],
                "type": ["exec_call", "training", "exec_call"],
                "cost": [800.0, 1200.0, 800.0],
                "risk_flag": ["red", "yellow", "red"],
                "reason": ["churn_risk", "low_usage", "churn_risk"],
                "decided_by": ["c1", "c1", "c2"],
            }
        ),
    }


def engine_for(tables: dict[str, pd.DataFrame]) -> DuckDBEngine:
    con = duckdb.connect()
    for name, frame in tables.items():
        con.register(f"_{name}", frame)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM _{name}")
        con.unregister(f"_{name}")
    return DuckDBEngine(con)


def spine_at(as_of: pd.Timestamp = AS_OF) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ["A1", "A2"],
            "as_of": [as_of, as_of],
            "contract_id": ["K1", "K2"],
            "end_date": [T("2025-01-31"), T("2025-06-01")],
            "arr": [1000.0, 50_000.0],
            "renewed": [1.0, float("nan")],
            "renewal_arr": [1000.0, float("nan")],
            "outcome": ["flat", None],
            "days_to_renewal": [(T("2025-01-31") - as_of).days, (T("2025-06-01") - as_of).days],
        }
    )


@pytest.fixture
def cfg() -> FeaturesConfig:
    return FeaturesConfig(usage={"key_event_types": ["report"]})
