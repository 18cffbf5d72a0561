-- What the reminder service knows about each order. A row can exist before its
-- shop.order.created arrives (payment or cancellation seen first): then created_at is null
-- and status already says the order needs no reminder.
CREATE TABLE IF NOT EXISTS orders (
    order_id        text PRIMARY KEY,
    status          text NOT NULL DEFAULT 'unpaid'
                    CHECK (status IN ('unpaid', 'paid', 'cancelled', 'closed')),
    customer_id     text,
    locale          text,
    timezone        text,
    created_at      timestamptz,
    pay_deadline    timestamptz,
    total           numeric,
    currency        text,
    details         jsonb,
    created_event   text,
    settled_at      timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS orders_customer ON orders (customer_id);

-- Every decision about an order's reminders, for `followup history --order` and attribution.
CREATE TABLE IF NOT EXISTS reminder_decisions (
    id         bigserial PRIMARY KEY,
    order_id   text NOT NULL,
    tier       integer,
    decision   text NOT NULL,
    reason     text NOT NULL,
    decided_at timestamptz NOT NULL,
    due_at     timestamptz
);
CREATE INDEX IF NOT EXISTS reminder_decisions_order ON reminder_decisions (order_id, id);
