from pathlib import Path

from followup.cli import ASYNCAPI_FILE, asyncapi_document

ROOT = Path(__file__).resolve().parents[3]


def test_committed_asyncapi_document_is_current() -> None:
    committed = (ROOT / ASYNCAPI_FILE).read_text(encoding="utf-8")
    assert committed == asyncapi_document(), "docs/asyncapi.json is stale: run `followup docs`"


def test_document_describes_every_topic_we_consume_and_produce() -> None:
    import json

    document = json.loads(asyncapi_document())
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert {
        "shop.orders",
        "shop.payments",
        "shop.shipments",
        "shop.aftersales",
        "followup.notifications",
        "followup.notification-status",
        "shop.orders.dlq",
    } <= addresses
    assert "OrderCreated" in document["components"]["schemas"]
    assert "SendNotification" in document["components"]["schemas"]
