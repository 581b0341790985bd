-- Billing: subscriptions, orders, invoices and payments; webhooks for integrations.
-- SQLite port of ../20240101000003_billing.sql. The order_status enum is a CHECK on text;
-- text[] and jsonb are JSON text; numeric(12, 2) is NUMERIC; double precision is REAL.

CREATE TABLE subscriptions (
    id              INTEGER PRIMARY KEY,
    organization_id INTEGER NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    plan_id         INTEGER NOT NULL REFERENCES plans (id) ON DELETE RESTRICT,
    seats           INTEGER NOT NULL DEFAULT 1 CHECK (seats > 0),
    started_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    ends_at         TEXT,
    -- Compared as instants (julianday), not as text, so that differently written times compare
    -- correctly.
    CHECK (ends_at IS NULL OR julianday(ends_at) > julianday(started_at))
);

-- A reserved word as a table name: it must always be quoted.
CREATE TABLE "order" (
    id              INTEGER PRIMARY KEY,
    organization_id INTEGER NOT NULL REFERENCES organizations (id) ON DELETE RESTRICT,
    -- PostgreSQL enum order_status.
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'paid', 'shipped', 'cancelled')),
    -- char(3).
    currency        TEXT NOT NULL DEFAULT 'EUR' CHECK (length(currency) <= 3),
    placed_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE order_items (
    order_id         INTEGER NOT NULL REFERENCES "order" (id) ON DELETE CASCADE,
    line_no          INTEGER NOT NULL CHECK (line_no > 0),
    description      TEXT NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_cents INTEGER NOT NULL CHECK (unit_price_cents >= 0),
    total_cents      INTEGER GENERATED ALWAYS AS (quantity * unit_price_cents) STORED,
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE invoices (
    id        INTEGER PRIMARY KEY,
    order_id  INTEGER NOT NULL UNIQUE REFERENCES "order" (id) ON DELETE RESTRICT,
    number    TEXT NOT NULL UNIQUE,
    issued_on TEXT NOT NULL DEFAULT CURRENT_DATE,
    due_on    TEXT NOT NULL,
    -- numeric(12, 2): NUMERIC affinity, with the precision's bound as a CHECK (the scale is not
    -- enforced).
    amount    NUMERIC NOT NULL CHECK (amount >= 0 AND amount < 10000000000),
    CHECK (due_on >= issued_on)
);

CREATE TABLE payments (
    id           INTEGER PRIMARY KEY,
    invoice_id   INTEGER NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
    method       TEXT NOT NULL CHECK (method IN ('card', 'transfer', 'voucher')),
    paid_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE webhooks (
    id         INTEGER PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    -- PostgreSQL: url ~ '^https?://'.
    url        TEXT NOT NULL CHECK (url GLOB 'http://*' OR url GLOB 'https://*'),
    secret     TEXT NOT NULL,
    -- text[] '{issue.created}': a JSON array of strings.
    events     TEXT NOT NULL DEFAULT '["issue.created"]'
               CHECK (json_valid(events) AND json_type(events) = 'array'),
    active     BOOLEAN NOT NULL DEFAULT 1 CHECK (active IN (0, 1))
);

CREATE TABLE webhook_deliveries (
    id           INTEGER PRIMARY KEY,
    webhook_id   INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    payload      TEXT NOT NULL CHECK (json_valid(payload)),
    status_code  INTEGER,
    duration_ms  REAL,
    delivered_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
