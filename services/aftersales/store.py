"""SQL of the after-sales service."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from followup.db import Connection


@dataclass(frozen=True)
class StageFact:
    case_id: str
    order_id: str
    kind: str | None
    stage: str
    rank: int
    at: datetime


async def advance_cases(conn: Connection, facts: Sequence[StageFact]) -> None:
    """A stage never moves backwards: a late, lower stage leaves the case where it is."""
    for fact in sorted(facts, key=lambda f: (f.case_id, f.rank)):
        await conn.execute(
            """
            INSERT INTO cases (case_id, order_id, kind, stage, stage_rank, stage_at)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (case_id) DO UPDATE SET
                kind = coalesce(EXCLUDED.kind, cases.kind),
                stage = CASE WHEN EXCLUDED.stage_rank > cases.stage_rank
                             THEN EXCLUDED.stage ELSE cases.stage END,
                stage_at = CASE WHEN EXCLUDED.stage_rank > cases.stage_rank
                                THEN EXCLUDED.stage_at ELSE cases.stage_at END,
                stage_rank = greatest(EXCLUDED.stage_rank, cases.stage_rank),
                updated_at = now()
            """,
            fact.case_id,
            fact.order_id,
            fact.kind,
            fact.stage,
            fact.rank,
            fact.at,
        )
