-- Each after-sales case and the furthest stage it has reached.
CREATE TABLE IF NOT EXISTS cases (
    case_id    text PRIMARY KEY,
    order_id   text NOT NULL,
    kind       text,
    stage      text NOT NULL,
    stage_rank integer NOT NULL,
    stage_at   timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS cases_order ON cases (order_id);
