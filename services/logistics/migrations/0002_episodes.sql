-- Issue 4: everything the detection rules need, per shipment and per paid order, with the
-- state of its current problem episode; and a log of every message decided, with the rule
-- and evidence, for `followup history` and for staff reviewing why something was sent.
ALTER TABLE shipments RENAME COLUMN status TO last_status;
ALTER TABLE shipments
    ADD COLUMN IF NOT EXISTS tracking_number   text,
    ADD COLUMN IF NOT EXISTS service_level     text,
    ADD COLUMN IF NOT EXISTS destination_city  text,
    ADD COLUMN IF NOT EXISTS promised_delivery text,   -- ISO date or time, as the shop sent it
    ADD COLUMN IF NOT EXISTS revised_delivery  text,   -- the carrier's latest estimate
    ADD COLUMN IF NOT EXISTS revised_at        timestamptz,
    ADD COLUMN IF NOT EXISTS last_location     text,
    ADD COLUMN IF NOT EXISTS failed_attempts   jsonb NOT NULL DEFAULT '[]'::jsonb,  -- distinct scan times
    ADD COLUMN IF NOT EXISTS delivered_at      timestamptz,
    ADD COLUMN IF NOT EXISTS returned_at       timestamptz,
    ADD COLUMN IF NOT EXISTS pickup_notified   boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS order_ended_at    timestamptz,  -- the order was cancelled or closed
    ADD COLUMN IF NOT EXISTS last_progress_at  timestamptz,
    ADD COLUMN IF NOT EXISTS source_event_id   text,
    ADD COLUMN IF NOT EXISTS source_event_time timestamptz,
    ADD COLUMN IF NOT EXISTS episode           jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Due time of this shipment's check timer (null: none), so an unchanged due time is not
    -- rewritten on every scan.
    ADD COLUMN IF NOT EXISTS check_at          timestamptz;

-- Every scan rewrites its shipment's row: room on each page lets PostgreSQL update in place
-- (HOT) without touching the indexes, since a scan changes no indexed column.
ALTER TABLE shipments SET (fillfactor = 70);

-- Open episodes by colour for the dashboard gauge, without reading closed ones.
CREATE INDEX IF NOT EXISTS shipments_open_episodes ON shipments ((episode ->> 'severity'))
    WHERE (episode ->> 'is_open') = 'true';

-- Orders as far as dispatch is concerned: paid, ended (cancelled or closed), dispatched.
-- A row can exist from any of the three topics first.
CREATE TABLE IF NOT EXISTS orders (
    order_id          text PRIMARY KEY,
    shop_id           text,
    customer_id       text,     -- for `followup history --customer`; never in a command
    item_title        text,     -- what the customer bought, so messages can name it
    item_count        integer,
    paid_at           timestamptz,
    ended_at          timestamptz,
    ended_reason      text,
    dispatched_at     timestamptz,
    source_event_id   text,
    source_event_time timestamptz,
    episode           jsonb NOT NULL DEFAULT '{}'::jsonb,
    check_at          timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS orders_customer ON orders (customer_id);
CREATE INDEX IF NOT EXISTS orders_open_episodes ON orders ((episode ->> 'severity'))
    WHERE (episode ->> 'is_open') = 'true';

CREATE TABLE IF NOT EXISTS notices (
    id              bigserial PRIMARY KEY,
    order_id        text NOT NULL,
    shipment_id     text,
    episode         integer,
    stage           text NOT NULL,
    kind            text,
    template        text,
    rule            text,
    severity        text,
    idempotency_key text,
    evidence        jsonb NOT NULL DEFAULT '{}'::jsonb,
    decided_at      timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS notices_order ON notices (order_id, id);
