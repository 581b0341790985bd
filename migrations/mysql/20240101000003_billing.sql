-- Billing: subscriptions, orders, invoices and payments; webhooks for integrations.
-- MySQL 8 / MariaDB 10.6+ port of ../20240101000003_billing.sql. The order_status enum is an
-- ENUM column; webhooks.events (text[] of event names) is a SET; jsonb is JSON; numeric(12, 2) is
-- DECIMAL(12, 2); double precision is DOUBLE; current_date as a default is the expression
-- (CURRENT_DATE).

CREATE TABLE subscriptions (
    id              BIGINT NOT NULL AUTO_INCREMENT,
    organization_id BIGINT NOT NULL,
    plan_id         SMALLINT NOT NULL,
    seats           INT NOT NULL DEFAULT 1,
    started_at      DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    ends_at         DATETIME(6) NULL,
    PRIMARY KEY (id),
    CONSTRAINT subscriptions_seats_check CHECK (seats > 0),
    CONSTRAINT subscriptions_check CHECK (ends_at IS NULL OR ends_at > started_at),
    CONSTRAINT subscriptions_organization_id_fkey FOREIGN KEY (organization_id)
        REFERENCES organizations (id) ON DELETE CASCADE,
    CONSTRAINT subscriptions_plan_id_fkey FOREIGN KEY (plan_id)
        REFERENCES plans (id) ON DELETE RESTRICT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- A reserved word as a table name: it must always be quoted (with backticks in MySQL).
CREATE TABLE `order` (
    id              BIGINT NOT NULL AUTO_INCREMENT,
    organization_id BIGINT NOT NULL,
    -- PostgreSQL enum order_status.
    status          ENUM('pending', 'paid', 'shipped', 'cancelled') NOT NULL DEFAULT 'pending',
    currency        CHAR(3) NOT NULL DEFAULT 'EUR',
    placed_at       DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    CONSTRAINT order_organization_id_fkey FOREIGN KEY (organization_id)
        REFERENCES organizations (id) ON DELETE RESTRICT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE order_items (
    order_id         BIGINT NOT NULL,
    line_no          INT NOT NULL,
    description      TEXT NOT NULL,
    quantity         INT NOT NULL,
    unit_price_cents BIGINT NOT NULL,
    total_cents      BIGINT GENERATED ALWAYS AS (quantity * unit_price_cents) STORED,
    PRIMARY KEY (order_id, line_no),
    CONSTRAINT order_items_line_no_check CHECK (line_no > 0),
    CONSTRAINT order_items_quantity_check CHECK (quantity > 0),
    CONSTRAINT order_items_unit_price_cents_check CHECK (unit_price_cents >= 0),
    CONSTRAINT order_items_order_id_fkey FOREIGN KEY (order_id)
        REFERENCES `order` (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE invoices (
    id        BIGINT NOT NULL AUTO_INCREMENT,
    order_id  BIGINT NOT NULL,
    number    VARCHAR(190) NOT NULL,
    issued_on DATE NOT NULL DEFAULT (CURRENT_DATE),
    due_on    DATE NOT NULL,
    amount    DECIMAL(12, 2) NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT invoices_order_id_key UNIQUE (order_id),
    CONSTRAINT invoices_number_key UNIQUE (number),
    CONSTRAINT invoices_amount_check CHECK (amount >= 0),
    CONSTRAINT invoices_check CHECK (due_on >= issued_on),
    CONSTRAINT invoices_order_id_fkey FOREIGN KEY (order_id)
        REFERENCES `order` (id) ON DELETE RESTRICT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE payments (
    id           BIGINT NOT NULL AUTO_INCREMENT,
    invoice_id   BIGINT NOT NULL,
    amount_cents BIGINT NOT NULL,
    method       VARCHAR(16) NOT NULL,
    paid_at      DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    CONSTRAINT payments_amount_cents_check CHECK (amount_cents > 0),
    CONSTRAINT payments_method_check CHECK (method IN ('card', 'transfer', 'voucher')),
    CONSTRAINT payments_invoice_id_fkey FOREIGN KEY (invoice_id)
        REFERENCES invoices (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE webhooks (
    id         BIGINT NOT NULL AUTO_INCREMENT,
    project_id CHAR(36) NOT NULL,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    -- text[] '{issue.created}': a SET of the event names a webhook can subscribe to. PostgreSQL
    -- takes any text here; a SET takes these names only (each at most once, read back
    -- comma-separated in this order): a new event name is an ALTER TABLE ... MODIFY.
    events     SET('issue.created', 'issue.updated', 'issue.deleted',
                   'comment.created', 'comment.updated', 'comment.deleted',
                   'milestone.created', 'milestone.updated', 'project.updated')
               NOT NULL DEFAULT 'issue.created',
    active     BOOLEAN NOT NULL DEFAULT TRUE,
    PRIMARY KEY (id),
    -- PostgreSQL: url ~ '^https?://'.
    CONSTRAINT webhooks_url_check CHECK (url REGEXP '^https?://'),
    CONSTRAINT webhooks_project_id_fkey FOREIGN KEY (project_id)
        REFERENCES projects (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE webhook_deliveries (
    id           BIGINT NOT NULL AUTO_INCREMENT,
    webhook_id   BIGINT NOT NULL,
    payload      JSON NOT NULL,
    status_code  SMALLINT NULL,
    duration_ms  DOUBLE NULL,
    delivered_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    CONSTRAINT webhook_deliveries_webhook_id_fkey FOREIGN KEY (webhook_id)
        REFERENCES webhooks (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
