"""What the customer decides and what they are spared: opt-outs per channel and per class
(set by the platform's event and by the CLI), quiet hours in their timezone, and one contact
budget across all services where service notices win and nothing is dropped silently."""

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from contracts.notifications import MessageClass, NotificationKind, Priority
from followup import cli
from tests.harness import eventually
from tests.integration.notifier.conftest import T0, Notifier, NotifierFactory

pytestmark = pytest.mark.integration

POLICY = """
[notifier.contact_budget]
limit = 2
reserved_for_service = 1

[notifier.routes]
shipment_update = ["sms", "webhook"]
"""


def reminder(order_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "variables": {
            "customer_name": "王女士",
            "order_id": order_id,
            "items": [{"title": "羊毛混纺大衣", "quantity": 1, "options": {}}],
            "total": "599.00",
            "currency": "CNY",
            "pay_deadline": (T0 + timedelta(days=1)).isoformat(),
        },
        "priority": Priority.LOW,
        "message_class": MessageClass.MARKETING,
        **extra,
    }


async def update(n: Notifier, key: str, customer: str, order: str, **extra: Any) -> None:
    await n.send(
        key,
        NotificationKind.SHIPMENT_UPDATE,
        customer_id=customer,
        order_id=order,
        variables={"order_id": order, "note": "已到达转运中心"},
        **extra,
    )


async def preferences(database: str, *args: str) -> str:
    result = await asyncio.to_thread(
        CliRunner().invoke, cli.app, ["preferences", *args], env={"DATABASE_URL": database}
    )
    assert result.exit_code == 0, result.output
    return result.output


async def test_opt_outs_per_channel_and_class_from_the_platform_and_the_cli(
    notifier: NotifierFactory, database: str
) -> None:
    async with notifier(POLICY) as n:
        await n.order("O-50", "C-50", phone="+8613800000050")
        await n.recipient_known("C-50")
        await n.preference(customer_id="C-50", channel="sms", opted_out=True, source="app")
        await n.preference(customer_id="C-50", message_class="marketing", opted_out=True)

        async def opt_outs() -> int:
            count: int = await n.db.fetchval("SELECT count(*) FROM notifier.opt_outs")
            return count

        await eventually(opt_outs, lambda c: c == 2, what="opt-outs recorded")
        await update(n, "update:O-50:1", "C-50", "O-50")
        first = await n.until_status("update:O-50:1", "sent")
        assert first["channel"] == "webhook"
        assert ("skipped_channel", "sms: opted_out") in await n.events("update:O-50:1")
        await n.send(
            "unpaid_reminder:O-50:1",
            NotificationKind.UNPAID_REMINDER,
            customer_id="C-50",
            order_id="O-50",
            **reminder("O-50"),
        )
        stopped = await n.until_status("unpaid_reminder:O-50:1", "suppressed")
        assert stopped["reason"] == "opted_out: marketing messages"

        shown = await preferences(database, "show", "C-50")
        assert "opted out of all messages on sms (since" in shown
        assert "via app)" in shown
        assert "opted out of marketing messages on every channel" in shown
        assert "via shop-platform/test" in shown

        # Opting back in to SMS by the CLI: the next notice goes by SMS again.
        await preferences(database, "opt-in", "C-50", "--channel", "sms")
        await update(n, "update:O-50:2", "C-50", "O-50")
        second = await n.until_status("update:O-50:2", "sent")
        assert second["channel"] == "sms"

        # Every channel, every class: nothing goes out, and the reason says so.
        await preferences(database, "opt-out", "C-50")
        await update(n, "update:O-50:3", "C-50", "O-50")
        third = await n.until_status("update:O-50:3", "suppressed")
        assert third["reason"] == "opted_out: transactional messages"


async def test_marketing_waits_for_the_customers_morning_transactional_does_not(
    notifier: NotifierFactory,
) -> None:
    async with notifier() as n:  # the default budget leaves room for all of these
        n.clock.set(T0.replace(hour=23))  # 23:00 in Shanghai, 15:00 in London
        await n.order("O-60", "C-60", phone="+8613800000060")
        await n.order("O-61", "C-61", phone="+447700900061", timezone="Europe/London", locale="en")
        await n.recipient_known("C-60")
        await n.recipient_known("C-61")

        await n.send(
            "unpaid_reminder:O-60:1",
            NotificationKind.UNPAID_REMINDER,
            customer_id="C-60",
            order_id="O-60",
            **reminder("O-60"),
        )
        deferred = await n.until_reason("unpaid_reminder:O-60:1", "quiet_hours")
        morning = T0.replace(hour=9) + timedelta(days=1)
        assert deferred["next_attempt_at"] == morning
        assert await n.events("unpaid_reminder:O-60:1") == [
            ("deferred", f"quiet_hours until {morning.isoformat()}")
        ]
        await update(n, "update:O-60:1", "C-60", "O-60")
        await n.until_status("update:O-60:1", "sent")
        await n.send(
            "unpaid_reminder:O-61:1",
            NotificationKind.UNPAID_REMINDER,
            customer_id="C-61",
            order_id="O-61",
            **reminder("O-61"),
        )
        london = await n.until_status("unpaid_reminder:O-61:1", "sent")
        assert london["locale"] is None  # resolved from the recipient when sent
        assert "Hi 王女士," in n.providers.gateway.accepted[-1].payload["text"]

        # One that would expire in the night is not sent at dawn: suppressed, with why.
        await n.send(
            "unpaid_reminder:O-60:2",
            NotificationKind.UNPAID_REMINDER,
            customer_id="C-60",
            order_id="O-60",
            **reminder("O-60", expires_at=T0.replace(hour=23, minute=59)),
        )
        night = await n.until_status("unpaid_reminder:O-60:2", "suppressed")
        assert night["reason"] == "quiet_hours: it would expire before the customer's morning"

        n.clock.set(morning)
        await n.until_status("unpaid_reminder:O-60:1", "sent")


async def test_one_contact_budget_service_notices_first_deferred_merged_never_silent(
    notifier: NotifierFactory,
) -> None:
    async with notifier(POLICY) as n:
        await n.order("O-70", "C-70", phone="+8613800000070")
        await n.recipient_known("C-70")
        window_end = T0 + timedelta(days=1)

        await n.send(
            "unpaid_reminder:O-70:1",
            NotificationKind.UNPAID_REMINDER,
            customer_id="C-70",
            order_id="O-70",
            **reminder("O-70"),
        )
        await n.until_status("unpaid_reminder:O-70:1", "sent")
        # The second reminder would take the last slot, which is kept for service notices.
        await n.send(
            "unpaid_reminder:O-71:1",
            NotificationKind.UNPAID_REMINDER,
            customer_id="C-70",
            order_id="O-71",
            **reminder("O-71", expires_at=T0 + timedelta(hours=30)),
        )
        waiting = await n.until_reason("unpaid_reminder:O-71:1", "contact_budget")
        assert waiting["next_attempt_at"] == window_end
        # A carrier exception takes that slot at once.
        await n.send(
            "shipment_exception:O-70:1",
            NotificationKind.SHIPMENT_EXCEPTION,
            order_id="O-70",
            priority=Priority.HIGH,
            variables={"order_id": "O-70"},
        )
        await n.until_status("shipment_exception:O-70:1", "sent")
        # Budget spent: a routine update waits for a slot ...
        await update(n, "update:O-70:1", "C-70", "O-70")
        later = await n.until_reason("update:O-70:1", "contact_budget")
        assert later["next_attempt_at"] == window_end
        # ... a newer reminder for the same order replaces the older one instead of adding ...
        await n.send(
            "unpaid_reminder:O-71:2",
            NotificationKind.UNPAID_REMINDER,
            customer_id="C-70",
            order_id="O-71",
            **reminder("O-71", expires_at=T0 + timedelta(hours=30)),
        )
        await n.until_reason("unpaid_reminder:O-71:2", "contact_budget")
        newer = await n.row("unpaid_reminder:O-71:2")
        merged = await n.until_status("unpaid_reminder:O-71:1", "suppressed")
        assert newer is not None
        assert merged["reason"] == f"merged: superseded by message {newer['message_id']}"
        # ... and a critical notice goes out regardless.
        await n.send(
            "aftersale_progress:O-70:refund",
            NotificationKind.AFTERSALE_PROGRESS,
            order_id="O-70",
            priority=Priority.CRITICAL,
            variables={"order_id": "O-70"},
        )
        await n.until_status("aftersale_progress:O-70:refund", "sent")

        # A day later the slots come back: the update goes, the reminder (low priority, one
        # slot left to it) would have to wait past its expiry and is suppressed, with why.
        n.clock.set(window_end)
        await n.until_status("update:O-70:1", "sent")
        gone = await n.until_status("unpaid_reminder:O-71:2", "suppressed")
        assert gone["reason"] == (
            "contact_budget: 2 messages in 24h reached and it would expire before a slot frees"
        )

        statuses = await n.statuses(expected=6)
        outcome = {k: e["type"].rsplit(".", 1)[1] for k, e in statuses.items()}
        assert outcome == {
            "unpaid_reminder:O-70:1": "sent",
            "shipment_exception:O-70:1": "sent",
            "unpaid_reminder:O-71:1": "suppressed",
            "aftersale_progress:O-70:refund": "sent",
            "update:O-70:1": "sent",
            "unpaid_reminder:O-71:2": "suppressed",
        }
