"""The customer's side of a return: an approved item not sent back gets a reminder, then a
final one before the return window closes, and shipping it stops both (and withdraws any
reminder still queued at the notifier)."""

from datetime import datetime, timedelta

import pytest

from tests.integration.aftersales.conftest import T0, Rig, utc
from tests.integration.aftersales.shop import aftersale

pytestmark = pytest.mark.integration

APPROVED = T0 + timedelta(hours=1)


async def test_reminders_to_send_the_item_back_until_it_is_shipped(rig: Rig) -> None:
    await rig.publish(
        aftersale("requested", "R-20", "O-20", T0),
        aftersale("requested", "R-21", "O-21", T0, kind="exchange"),
        aftersale("requested", "R-22", "O-22", T0),
    )
    await rig.quiet()
    rig.clock.set(APPROVED)
    await rig.publish(
        *(
            aftersale("approved", c, o, APPROVED)
            for c, o in (("R-20", "O-20"), ("R-21", "O-21"), ("R-22", "O-22"))
        )
    )
    await rig.quiet()
    rig.clock.set(T0 + timedelta(days=1))
    await rig.publish(aftersale("return_shipped", "R-22", "O-22", T0 + timedelta(days=1)))
    await rig.quiet()

    # Three days after approval: the two items not yet shipped get a friendly reminder.
    await rig.advance(APPROVED + timedelta(days=3) - rig.clock.now())
    reminders = [
        s
        for s in await rig.sends()
        if s["template"].startswith("aftersale_progress.return_reminder")
    ]
    assert sorted(r["case_id"] for r in reminders) == ["R-20", "R-21"]
    first = next(r for r in reminders if r["case_id"] == "R-20")
    assert first["template"] == "aftersale_progress.return_reminder"
    assert first["idempotency_key"] == "aftersale_progress:R-20:return_reminder"
    assert first["priority"] == "normal"
    assert first["message_class"] == "transactional"
    assert first["variables"]["ship_back_by"] == utc(APPROVED + timedelta(days=7))
    assert first["variables"]["final"] is False
    assert first["meta"]["rule"] == "return_reminder"
    assert datetime.fromisoformat(first["expires_at"]) == APPROVED + timedelta(days=7)

    # R-21 ships: its queued reminder is withdrawn and the final one never comes.
    shipped_at = APPROVED + timedelta(days=3, hours=2)
    rig.clock.set(shipped_at)
    await rig.publish(aftersale("return_shipped", "R-21", "O-21", shipped_at))
    await rig.quiet()
    withdrawn = [
        c
        for c in await rig.cancels()
        if "aftersale_progress:R-21:return_reminder" in c["idempotency_keys"]
    ]
    assert len(withdrawn) == 1
    assert withdrawn[0]["order_id"] == "O-21"
    assert withdrawn[0]["reason"] == "aftersale_moved_on"

    # A day before the window closes, the last reminder; after it, nothing more.
    await rig.advance(APPROVED + timedelta(days=6) - rig.clock.now())
    final = (await rig.sends("R-20"))[-1]
    assert final["template"] == "aftersale_progress.return_reminder.final"
    assert final["variables"]["final"] is True
    await rig.advance(timedelta(days=3))
    assert await rig.names("R-20") == [
        "requested",
        "approved",
        "return_reminder",
        "return_final_reminder",
    ]
    assert not any("reminder" in name for name in await rig.names("R-22"))  # shipped in time
    assert "return_final_reminder" not in await rig.names("R-21")
    assert (
        await rig.db.fetchval(
            "SELECT count(*) FROM aftersales.timers WHERE kind = 'aftersale_return_reminder'"
        )
        == 0
    )
