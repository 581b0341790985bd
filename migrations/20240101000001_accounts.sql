-- Accounts: organizations, their people, and how they sign in.

CREATE DOMAIN email_address AS text
    CHECK (VALUE ~ '^[^@[:space:]]+@[^@[:space:]]+$');

-- Lookup tables, filled here: their rows are part of the schema, not test data.
CREATE TABLE roles (
    id          smallint PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    description text NOT NULL
);
INSERT INTO roles (id, name, description) VALUES
    (1, 'owner',  'Full control, including billing'),
    (2, 'admin',  'Manages members and projects'),
    (3, 'member', 'Works on projects'),
    (4, 'guest',  'Reads what is shared with them');

CREATE TABLE plans (
    id            smallint PRIMARY KEY,
    code          text NOT NULL UNIQUE,
    monthly_cents integer NOT NULL CHECK (monthly_cents >= 0),
    max_seats     integer
);
INSERT INTO plans (id, code, monthly_cents, max_seats) VALUES
    (1, 'free', 0, 5),
    (2, 'team', 2900, 50),
    (3, 'enterprise', 49900, NULL);

CREATE TABLE organizations (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL,
    slug       text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]*$'),
    plan_id    smallint NOT NULL DEFAULT 1 REFERENCES plans (id) ON DELETE RESTRICT,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         email_address NOT NULL UNIQUE,
    display_name  text NOT NULL,
    is_admin      boolean NOT NULL DEFAULT false,
    -- Self-reference: who invited this user.
    invited_by_id bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- A name that must be quoted: mixed case, for the table and a column.
CREATE TABLE "UserPreferences" (
    user_id     bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    "themeName" text NOT NULL DEFAULT 'light',
    timezone    text NOT NULL DEFAULT 'UTC',
    locale      varchar(16) NOT NULL DEFAULT 'en'
);

-- Composite primary key.
CREATE TABLE memberships (
    organization_id bigint NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id         smallint NOT NULL DEFAULT 3 REFERENCES roles (id) ON DELETE RESTRICT,
    joined_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, user_id)
);

CREATE TABLE teams (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id bigint NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            text NOT NULL,
    -- Two-column unique constraint.
    UNIQUE (organization_id, name)
);

CREATE TABLE team_members (
    team_id bigint NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (team_id, user_id)
);

CREATE TABLE sessions (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    ip         inet NOT NULL,
    user_agent text,
    expires_at timestamptz NOT NULL
);

CREATE TABLE api_tokens (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       text NOT NULL,
    token_hash bytea NOT NULL UNIQUE,
    scopes     text[] NOT NULL DEFAULT '{}',
    expires_at timestamptz
);
