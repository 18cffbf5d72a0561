-- Tables every service has in its own schema: inbox (duplicate events), outbox (messages to
-- publish after commit), timers (durable due times). See architecture.md.

CREATE TABLE IF NOT EXISTS inbox (
    event_id    text PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS inbox_received_at ON inbox (received_at);

CREATE TABLE IF NOT EXISTS outbox (
    id         bigserial PRIMARY KEY,
    topic      text NOT NULL,
    key        bytea,
    value      bytea NOT NULL,
    headers    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS timers (
    kind       text NOT NULL,
    key        text NOT NULL,
    subject    text NOT NULL,
    due_at     timestamptz NOT NULL,
    payload    jsonb NOT NULL DEFAULT '{}'::jsonb,
    attempts   integer NOT NULL DEFAULT 0,
    last_error text,
    failed_at  timestamptz,
    PRIMARY KEY (kind, key)
);
-- Only live timers are claimed; parked ones (failed_at set) stay for a person to inspect.
CREATE INDEX IF NOT EXISTS timers_due ON timers (due_at) WHERE failed_at IS NULL;
CREATE INDEX IF NOT EXISTS timers_subject ON timers (subject);

-- One notification per statement, not per row: a batch insert wakes listeners once.
CREATE OR REPLACE FUNCTION notify_table_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_' || TG_TABLE_NAME, '');
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER outbox_changed AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION notify_table_changed();
CREATE OR REPLACE TRIGGER timers_changed AFTER INSERT OR UPDATE ON timers
    FOR EACH STATEMENT EXECUTE FUNCTION notify_table_changed();
