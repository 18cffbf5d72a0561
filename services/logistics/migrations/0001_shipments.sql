-- Latest known state of each shipment; scans can arrive before the dispatch event.
CREATE TABLE IF NOT EXISTS shipments (
    shipment_id   text PRIMARY KEY,
    order_id      text NOT NULL,
    carrier       text,
    status        text,
    dispatched_at timestamptz,
    last_scan_at  timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS shipments_order ON shipments (order_id);
