-- The whole case file: when each stage happened (late ones too), what the steps said, whether
-- the customer has heard from us lately, and whether a promise was broken.
ALTER TABLE cases
    ADD COLUMN IF NOT EXISTS requested_at       timestamptz,
    ADD COLUMN IF NOT EXISTS approved_at        timestamptz,
    ADD COLUMN IF NOT EXISTS rejected_at        timestamptz,
    ADD COLUMN IF NOT EXISTS return_shipped_at  timestamptz,
    ADD COLUMN IF NOT EXISTS return_received_at timestamptz,
    ADD COLUMN IF NOT EXISTS refunded_at        timestamptz,
    ADD COLUMN IF NOT EXISTS closed_at          timestamptz,
    ADD COLUMN IF NOT EXISTS event_ids          jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN IF NOT EXISTS amount             numeric,
    ADD COLUMN IF NOT EXISTS currency           text,
    ADD COLUMN IF NOT EXISTS reason             text,
    ADD COLUMN IF NOT EXISTS reject_reason      text,
    ADD COLUMN IF NOT EXISTS return_carrier     text,
    ADD COLUMN IF NOT EXISTS return_tracking    text,
    ADD COLUMN IF NOT EXISTS refund_amount      numeric,
    ADD COLUMN IF NOT EXISTS refund_currency    text,
    ADD COLUMN IF NOT EXISTS refund_method      text,
    ADD COLUMN IF NOT EXISTS last_visible_at    timestamptz,
    ADD COLUMN IF NOT EXISTS updates_sent       integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS breached           boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS first_seen_at      timestamptz NOT NULL DEFAULT now();

-- Open cases by stage (the gauge) without scanning resolved history.
CREATE INDEX IF NOT EXISTS cases_open_stage ON cases (stage)
    WHERE stage IN ('requested', 'approved', 'return_shipped', 'return_received');

-- The shop's deadline promises per case, decided once: kept, breached, void or untracked.
CREATE TABLE IF NOT EXISTS case_promises (
    case_id     text NOT NULL,
    promise     text NOT NULL,
    started_at  timestamptz NOT NULL,
    due_at      timestamptz NOT NULL,
    outcome     text NOT NULL
                CHECK (outcome IN ('open', 'kept', 'breached', 'void', 'untracked')),
    resolved_at timestamptz,
    PRIMARY KEY (case_id, promise)
);
CREATE INDEX IF NOT EXISTS case_promises_breached ON case_promises (promise)
    WHERE outcome = 'breached';

-- Every message decided for a case, by its natural key (stage, still_on_it.N, reminder,
-- escalation): the guard that no stage is announced twice, and what to cancel when the case
-- overtakes a message still queued at the notifier.
CREATE TABLE IF NOT EXISTS case_messages (
    case_id         text NOT NULL,
    name            text NOT NULL,
    order_id        text NOT NULL,
    kind            text NOT NULL,
    decision        text NOT NULL CHECK (decision IN ('sent', 'skipped')),
    reason          text,
    idempotency_key text,
    template        text,
    decided_at      timestamptz NOT NULL,
    cancelled_at    timestamptz,
    PRIMARY KEY (case_id, name)
);

-- What happened and what was decided, in order, for `followup history`.
CREATE TABLE IF NOT EXISTS case_log (
    id      bigserial PRIMARY KEY,
    case_id text NOT NULL,
    order_id text NOT NULL,
    at      timestamptz NOT NULL,
    what    text NOT NULL,
    detail  text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS case_log_order ON case_log (order_id, id);

-- Order details from shop.orders and shop.payments, so messages can name the item and the
-- payment method a refund goes back to. A payment may arrive before its order.
CREATE TABLE IF NOT EXISTS orders (
    order_id      text PRIMARY KEY,
    customer_id   text,
    customer_name text,
    item_titles   jsonb NOT NULL DEFAULT '[]'::jsonb,
    currency      text,
    paid_method   text,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS orders_customer ON orders (customer_id);
CREATE INDEX IF NOT EXISTS orders_updated ON orders (updated_at);
