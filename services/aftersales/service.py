"""After-sales use cases."""

from collections.abc import Sequence

from contracts.shop import (
    AftersaleApprovedEvent,
    AftersaleClosedEvent,
    AftersaleRefundedEvent,
    AftersaleRejectedEvent,
    AftersaleRequestedEvent,
    AftersaleReturnReceivedEvent,
    AftersaleReturnShippedEvent,
)
from followup.db import Connection
from services.aftersales import store
from services.aftersales.store import StageFact

AftersaleEvent = (
    AftersaleRequestedEvent
    | AftersaleApprovedEvent
    | AftersaleRejectedEvent
    | AftersaleReturnShippedEvent
    | AftersaleReturnReceivedEvent
    | AftersaleRefundedEvent
    | AftersaleClosedEvent
)

STAGE_RANK = {
    "requested": 1,
    "approved": 2,
    "rejected": 2,
    "return_shipped": 3,
    "return_received": 4,
    "refunded": 5,
    "closed": 6,
}


class AftersalesService:
    async def on_aftersale_events(self, conn: Connection, events: Sequence[AftersaleEvent]) -> None:
        facts = []
        for event in events:
            stage = event.type.removeprefix("shop.aftersale.")
            if isinstance(event, AftersaleRequestedEvent):
                facts.append(
                    StageFact(
                        event.data.case_id,
                        event.data.order_id,
                        event.data.kind.value,
                        stage,
                        STAGE_RANK[stage],
                        event.data.requested_at,
                    )
                )
            else:
                facts.append(
                    StageFact(
                        event.data.case_id,
                        event.data.order_id,
                        None,
                        stage,
                        STAGE_RANK[stage],
                        event.data.at,
                    )
                )
        await store.advance_cases(conn, facts)
