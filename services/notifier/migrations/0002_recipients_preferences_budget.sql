-- Recipients: the notifier is the one place that knows who a message goes to. Logistics and
-- after-sales commands carry only the order; order.created carries the customer.
CREATE TABLE IF NOT EXISTS recipients (
    customer_id text PRIMARY KEY,
    name        text,
    locale      text,
    timezone    text,
    phone       text,
    email       text,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS recipient_orders (
    order_id    text PRIMARY KEY,
    customer_id text NOT NULL,
    recorded_at timestamptz NOT NULL
);

-- A customer's opt-outs: '*' stands for every channel or every class.
CREATE TABLE IF NOT EXISTS opt_outs (
    customer_id   text NOT NULL,
    channel       text NOT NULL,
    message_class text NOT NULL,
    source        text NOT NULL,
    at            timestamptz NOT NULL,
    PRIMARY KEY (customer_id, channel, message_class)
);

-- Contacts counted against the customer's budget: one row per message that was sent or is
-- being sent right now. A failed or rescheduled message gives its slot back.
CREATE TABLE IF NOT EXISTS contacts (
    message_id  uuid PRIMARY KEY REFERENCES deliveries (message_id),
    customer_id text NOT NULL,
    at          timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS contacts_customer ON contacts (customer_id, at);

-- What the notifier decided about a message besides sending it: held for its recipient,
-- released, deferred (quiet hours, contact budget), merged, suppressed.
CREATE TABLE IF NOT EXISTS delivery_events (
    id         bigserial PRIMARY KEY,
    message_id uuid NOT NULL REFERENCES deliveries (message_id),
    at         timestamptz NOT NULL,
    event      text NOT NULL,
    detail     text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS delivery_events_message ON delivery_events (message_id, id);

-- Locale and timezone are resolved when the message is sent (command, then recipient, then
-- policy default); a held message does not know them yet.
ALTER TABLE deliveries ALTER COLUMN locale DROP NOT NULL;
ALTER TABLE deliveries ALTER COLUMN timezone DROP NOT NULL;
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'held', 'sending', 'sent', 'failed', 'suppressed'));
-- Channels that failed for good for this message (e.g. the provider refused the number): a
-- retry goes straight to the others.
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS dead_channels text[] NOT NULL DEFAULT '{}';
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS provider text;
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS first_call_at timestamptz;
DROP INDEX IF EXISTS deliveries_due;
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_attempt_at)
    WHERE status IN ('pending', 'held');
CREATE INDEX IF NOT EXISTS deliveries_held ON deliveries (order_id) WHERE status = 'held';
CREATE INDEX IF NOT EXISTS deliveries_case ON deliveries (case_id) WHERE case_id IS NOT NULL;

-- A held message released by order.created is due at once: wake the delivery workers, as an
-- insert does. pg_notify folds the same notification within one transaction into one.
CREATE OR REPLACE TRIGGER deliveries_released AFTER UPDATE OF status ON deliveries
    FOR EACH ROW WHEN (OLD.status = 'held' AND NEW.status = 'pending')
    EXECUTE FUNCTION notify_table_changed();
