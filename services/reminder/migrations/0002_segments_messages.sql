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
    ADD COLUMN IF NOT EXISTS confirmed_at      timestamptz,
    -- Every tier as planned when the order arrived: [tier, decision, reason, due, last]. One column of the row written anyway, instead of a history row per order, and
    -- the source of the tiers still to come when one fires.
    ADD COLUMN IF NOT EXISTS plan              json,
    ADD COLUMN IF NOT EXISTS planned_at        timestamptz;
-- Room on each page for the updates a reminder makes (last_reminded_at, reminded_tier):
-- they stay on the page and skip the indexes.
ALTER TABLE orders SET (fillfactor = 85);
-- Details are only ever read back whole by the service: `json` keeps the text as written,
-- which costs far less to store than parsing it into `jsonb` for every new order.
ALTER TABLE orders ALTER COLUMN details TYPE json USING details::json;
-- The customer's other open orders, found when one of their reminders goes out, use the
-- index on customer_id from 0001: a customer has few orders, and a second index would be
-- written for every new order.

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
-- Found by customer when one of their orders is settled (then filtered on order_ids): a
-- btree written once per message, where a GIN index on order_ids cost a third of firing.
CREATE INDEX IF NOT EXISTS reminder_messages_customer ON reminder_messages (customer_id);

-- The history of an order: its plan (one line per tier) and every decision after it.
ALTER TABLE reminder_decisions ADD COLUMN IF NOT EXISTS segment text;

CREATE OR REPLACE VIEW reminder_history AS
SELECT d.id, 0::bigint AS step, d.order_id, d.tier, d.decision, d.reason, d.decided_at,
       d.due_at, d.segment
FROM reminder_decisions d
UNION ALL
SELECT 0::bigint, s.step, o.order_id, (s.value ->> 0)::integer, s.value ->> 1, s.value ->> 2,
       o.planned_at, (s.value ->> 3)::timestamptz, o.segment
FROM orders o
CROSS JOIN LATERAL json_array_elements(o.plan) WITH ORDINALITY AS s(value, step)
WHERE o.plan IS NOT NULL;
