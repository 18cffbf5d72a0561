-- The delivery queue. One row per idempotency key, forever: a command seen before is never
-- delivered twice, however often it arrives.
CREATE TABLE IF NOT EXISTS deliveries (
    message_id        uuid PRIMARY KEY,
    idempotency_key   text NOT NULL UNIQUE,
    kind              text NOT NULL,
    template          text NOT NULL,
    customer_id       text,
    order_id          text,
    case_id           text,
    locale            text NOT NULL,
    timezone          text NOT NULL,
    variables         jsonb NOT NULL,
    meta              jsonb NOT NULL,
    priority          text NOT NULL,
    message_class     text NOT NULL,
    not_before        timestamptz,
    expires_at        timestamptz,
    source_event_id   text,
    source_event_time timestamptz,
    command_time      timestamptz NOT NULL,
    accepted_at       timestamptz NOT NULL,
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'suppressed')),
    reason            text,
    attempts          integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL,
    lease_until       timestamptz,
    channel           text,
    finished_at       timestamptz
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_leased ON deliveries (lease_until) WHERE status = 'sending';
CREATE INDEX IF NOT EXISTS deliveries_order ON deliveries (order_id, kind);
CREATE INDEX IF NOT EXISTS deliveries_customer ON deliveries (customer_id, accepted_at);

-- Every try, for the delivery log: which channel and provider, outcome, timing.
CREATE TABLE IF NOT EXISTS delivery_attempts (
    id          bigserial PRIMARY KEY,
    message_id  uuid NOT NULL REFERENCES deliveries (message_id),
    attempt     integer NOT NULL,
    channel     text NOT NULL,
    provider    text NOT NULL,
    outcome     text NOT NULL,
    detail      text,
    started_at  timestamptz NOT NULL,
    duration_ms double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS delivery_attempts_message ON delivery_attempts (message_id, id);

-- Cancellations are remembered: a cancel that overtakes its command still wins.
CREATE TABLE IF NOT EXISTS cancellations (
    id              bigserial PRIMARY KEY,
    idempotency_key text,
    order_id        text,
    kind            text,
    reason          text NOT NULL,
    cancelled_at    timestamptz NOT NULL,
    CHECK (idempotency_key IS NOT NULL OR (order_id IS NOT NULL AND kind IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS cancellations_key ON cancellations (idempotency_key);
CREATE INDEX IF NOT EXISTS cancellations_order ON cancellations (order_id, kind);

CREATE OR REPLACE TRIGGER deliveries_changed AFTER INSERT ON deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION notify_table_changed();
