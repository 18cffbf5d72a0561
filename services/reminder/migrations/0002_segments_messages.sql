-- Segments, experiments, per-customer reminders and attribution (issue 3).

-- The segment and experiment group an order was planned with, what its reminders did, and
-- whether its payment already counts in the customer's figures (exactly once per order).
ALTER TABLE orders
    ADD COLUMN IF NOT EXISTS segment           text,
    ADD COLUMN IF NOT EXISTS variant           text,
    ADD COLUMN IF NOT EXISTS paid_amount       numeric,
    ADD COLUMN IF NOT EXISTS counted           boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS reminded_tier     integer,
    ADD COLUMN IF NOT EXISTS last_reminded_at  timestamptz,
    ADD COLUMN IF NOT EXISTS confirmed_at      timestamptz;
-- The customer's other open orders, found when one of their reminders goes out.
CREATE INDEX IF NOT EXISTS orders_customer_unpaid ON orders (customer_id) WHERE status = 'unpaid';

-- The service's own RFM figures per customer, from the payments it saw, and when the
-- customer last got a reminder (for the minimum gap across all their orders).
CREATE TABLE IF NOT EXISTS customers (
    customer_id      text PRIMARY KEY,
    paid_orders      integer NOT NULL DEFAULT 0,
    total_spent      numeric NOT NULL DEFAULT 0,
    last_paid_at     timestamptz,
    last_reminded_at timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Every reminder message decided, with every order it lists: a payment of the last open one
-- cancels it in the notifier if it has not left yet.
CREATE TABLE IF NOT EXISTS reminder_messages (
    idempotency_key text PRIMARY KEY,
    customer_id     text NOT NULL,
    order_ids       text[] NOT NULL,
    tier            integer NOT NULL,
    segment         text NOT NULL,
    variant         text NOT NULL,
    decided_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS reminder_messages_orders ON reminder_messages USING gin (order_ids);

ALTER TABLE reminder_decisions ADD COLUMN IF NOT EXISTS segment text;
