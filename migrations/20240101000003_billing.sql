-- Billing: subscriptions, orders, invoices and payments; webhooks for integrations.

CREATE TYPE order_status AS ENUM ('pending', 'paid', 'shipped', 'cancelled');

CREATE TABLE subscriptions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id bigint NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    plan_id         smallint NOT NULL REFERENCES plans (id) ON DELETE RESTRICT,
    seats           integer NOT NULL DEFAULT 1 CHECK (seats > 0),
    started_at      timestamptz NOT NULL DEFAULT now(),
    ends_at         timestamptz,
    CHECK (ends_at IS NULL OR ends_at > started_at)
);

-- A reserved word as a table name: it must always be quoted.
CREATE TABLE "order" (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id bigint NOT NULL REFERENCES organizations (id) ON DELETE RESTRICT,
    status          order_status NOT NULL DEFAULT 'pending',
    currency        char(3) NOT NULL DEFAULT 'EUR',
    placed_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE order_items (
    order_id         bigint NOT NULL REFERENCES "order" (id) ON DELETE CASCADE,
    line_no          integer NOT NULL CHECK (line_no > 0),
    description      text NOT NULL,
    quantity         integer NOT NULL CHECK (quantity > 0),
    unit_price_cents bigint NOT NULL CHECK (unit_price_cents >= 0),
    total_cents      bigint GENERATED ALWAYS AS (quantity * unit_price_cents) STORED,
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE invoices (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id  bigint NOT NULL UNIQUE REFERENCES "order" (id) ON DELETE RESTRICT,
    number    text NOT NULL UNIQUE,
    issued_on date NOT NULL DEFAULT current_date,
    due_on    date NOT NULL,
    amount    numeric(12, 2) NOT NULL CHECK (amount >= 0),
    CHECK (due_on >= issued_on)
);

CREATE TABLE payments (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_id   bigint NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    amount_cents bigint NOT NULL CHECK (amount_cents > 0),
    method       text NOT NULL CHECK (method IN ('card', 'transfer', 'voucher')),
    paid_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhooks (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    url        text NOT NULL CHECK (url ~ '^https?://'),
    secret     text NOT NULL,
    events     text[] NOT NULL DEFAULT '{issue.created}',
    active     boolean NOT NULL DEFAULT true
);

CREATE TABLE webhook_deliveries (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id   bigint NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    payload      jsonb NOT NULL,
    status_code  smallint,
    duration_ms  double precision,
    delivered_at timestamptz NOT NULL DEFAULT now()
);
