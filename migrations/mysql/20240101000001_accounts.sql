-- Accounts: organizations, their people, and how they sign in.
-- MySQL 8 / MariaDB 10.6+ port of ../20240101000001_accounts.sql. Identity columns are BIGINT
-- AUTO_INCREMENT; timestamptz is DATETIME(6) in UTC (sqlx sets time_zone '+00:00'; TIMESTAMP
-- would end in 2038); uuid is CHAR(36) defaulting to UUID() (version 1; gen_random_uuid() gives
-- version 4); boolean is TINYINT(1); inet is VARCHAR(45); bytea is VARBINARY; the email_address
-- domain is a CHECK. Foreign keys are table constraints (MySQL 8 ignores a column's REFERENCES),
-- and constraints keep PostgreSQL's names. Tables are utf8mb4_bin, which both servers have: text
-- compares, is unique and matches regex CHECKs case-sensitively, as in PostgreSQL. Unique text is
-- VARCHAR(190) (a 767-byte key), text with a default VARCHAR (MySQL's TEXT defaults must be
-- expressions), other text TEXT.

-- Lookup tables, filled here: their rows are part of the schema, not test data.
CREATE TABLE roles (
    id          SMALLINT NOT NULL,
    name        VARCHAR(190) NOT NULL,
    description TEXT NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT roles_name_key UNIQUE (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO roles (id, name, description) VALUES
    (1, 'owner',  'Full control, including billing'),
    (2, 'admin',  'Manages members and projects'),
    (3, 'member', 'Works on projects'),
    (4, 'guest',  'Reads what is shared with them');

CREATE TABLE plans (
    id            SMALLINT NOT NULL,
    code          VARCHAR(190) NOT NULL,
    monthly_cents INT NOT NULL,
    max_seats     INT NULL,
    PRIMARY KEY (id),
    CONSTRAINT plans_code_key UNIQUE (code),
    CONSTRAINT plans_monthly_cents_check CHECK (monthly_cents >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO plans (id, code, monthly_cents, max_seats) VALUES
    (1, 'free', 0, 5),
    (2, 'team', 2900, 50),
    (3, 'enterprise', 49900, NULL);

CREATE TABLE organizations (
    id         BIGINT NOT NULL AUTO_INCREMENT,
    name       TEXT NOT NULL,
    slug       VARCHAR(190) NOT NULL,
    plan_id    SMALLINT NOT NULL DEFAULT 1,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    CONSTRAINT organizations_slug_key UNIQUE (slug),
    -- PostgreSQL: slug ~ '^[a-z0-9][a-z0-9-]*$'. Written as "starts right, nothing outside the
    -- set" because MySQL's and MariaDB's `$` also matches before a final newline.
    CONSTRAINT organizations_slug_check
        CHECK (slug REGEXP '^[a-z0-9]' AND slug NOT REGEXP '[^a-z0-9-]'),
    CONSTRAINT organizations_plan_id_fkey FOREIGN KEY (plan_id)
        REFERENCES plans (id) ON DELETE RESTRICT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE users (
    id            BIGINT NOT NULL AUTO_INCREMENT,
    -- PostgreSQL's email_address domain (MySQL has no domains) as a CHECK on the column.
    email         VARCHAR(190) NOT NULL,
    display_name  TEXT NOT NULL,
    is_admin      BOOLEAN NOT NULL DEFAULT FALSE,
    -- Self-reference: who invited this user.
    invited_by_id BIGINT NULL,
    created_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    CONSTRAINT users_email_key UNIQUE (email),
    -- VALUE ~ '^[^@[:space:]]+@[^@[:space:]]+$'; the second test rejects the trailing newline
    -- that `$` lets through here.
    CONSTRAINT users_email_check
        CHECK (email REGEXP '^[^@[:space:]]+@[^@[:space:]]+$' AND email NOT REGEXP '[[:space:]]'),
    CONSTRAINT users_invited_by_id_fkey FOREIGN KEY (invited_by_id)
        REFERENCES users (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- A name that must be quoted: mixed case, for the table and a column. MySQL keeps the case on
-- Linux (lower_case_table_names = 0); a server with lower_case_table_names = 1 stores
-- userpreferences. Column names are case-insensitive in MySQL.
CREATE TABLE `UserPreferences` (
    user_id     BIGINT NOT NULL,
    `themeName` VARCHAR(64) NOT NULL DEFAULT 'light',
    timezone    VARCHAR(64) NOT NULL DEFAULT 'UTC',
    locale      VARCHAR(16) NOT NULL DEFAULT 'en',
    PRIMARY KEY (user_id),
    CONSTRAINT `UserPreferences_user_id_fkey` FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Composite primary key.
CREATE TABLE memberships (
    organization_id BIGINT NOT NULL,
    user_id         BIGINT NOT NULL,
    role_id         SMALLINT NOT NULL DEFAULT 3,
    joined_at       DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (organization_id, user_id),
    CONSTRAINT memberships_organization_id_fkey FOREIGN KEY (organization_id)
        REFERENCES organizations (id) ON DELETE CASCADE,
    CONSTRAINT memberships_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT memberships_role_id_fkey FOREIGN KEY (role_id)
        REFERENCES roles (id) ON DELETE RESTRICT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE teams (
    id              BIGINT NOT NULL AUTO_INCREMENT,
    organization_id BIGINT NOT NULL,
    name            VARCHAR(190) NOT NULL,
    PRIMARY KEY (id),
    -- Two-column unique constraint.
    CONSTRAINT teams_organization_id_name_key UNIQUE (organization_id, name),
    CONSTRAINT teams_organization_id_fkey FOREIGN KEY (organization_id)
        REFERENCES organizations (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE team_members (
    team_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    PRIMARY KEY (team_id, user_id),
    CONSTRAINT team_members_team_id_fkey FOREIGN KEY (team_id)
        REFERENCES teams (id) ON DELETE CASCADE,
    CONSTRAINT team_members_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- uuid columns are CHAR(36) with UUID() as an expression default (MySQL 8.0.13+, MariaDB
-- 10.2+), in place of gen_random_uuid().
CREATE TABLE sessions (
    id         CHAR(36) NOT NULL DEFAULT (UUID()),
    user_id    BIGINT NOT NULL,
    -- inet: text, loosely checked (hex digits, '.', ':' and a '/' prefix length only). 45
    -- characters hold any address; the longest IPv6 forms with a prefix length do not fit.
    ip         VARCHAR(45) NOT NULL,
    user_agent TEXT NULL,
    expires_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT sessions_ip_check CHECK (ip <> '' AND ip NOT REGEXP '[^0-9A-Fa-f.:/]'),
    CONSTRAINT sessions_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE api_tokens (
    id         CHAR(36) NOT NULL DEFAULT (UUID()),
    user_id    BIGINT NOT NULL,
    name       TEXT NOT NULL,
    -- bytea, unique: VARBINARY, since a BLOB can be unique only on a prefix.
    token_hash VARBINARY(255) NOT NULL,
    -- text[] of free-form scope names: a JSON array (a JSON default must be an expression).
    scopes     JSON NOT NULL DEFAULT (JSON_ARRAY()),
    expires_at DATETIME(6) NULL,
    PRIMARY KEY (id),
    CONSTRAINT api_tokens_token_hash_key UNIQUE (token_hash),
    CONSTRAINT api_tokens_scopes_check CHECK (JSON_TYPE(scopes) = 'ARRAY'),
    CONSTRAINT api_tokens_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
