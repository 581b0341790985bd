-- Accounts: organizations, their people, and how they sign in.
-- SQLite port of ../20240101000001_accounts.sql. Identity columns are INTEGER PRIMARY KEY (rowid
-- aliases), timestamptz is ISO-8601 UTC text, uuid is hyphenated text, boolean is 0/1.

-- Lookup tables, filled here: their rows are part of the schema, not test data.
CREATE TABLE roles (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL
);
INSERT INTO roles (id, name, description) VALUES
    (1, 'owner',  'Full control, including billing'),
    (2, 'admin',  'Manages members and projects'),
    (3, 'member', 'Works on projects'),
    (4, 'guest',  'Reads what is shared with them');

CREATE TABLE plans (
    id            INTEGER PRIMARY KEY,
    code          TEXT NOT NULL UNIQUE,
    monthly_cents INTEGER NOT NULL CHECK (monthly_cents >= 0),
    max_seats     INTEGER
);
INSERT INTO plans (id, code, monthly_cents, max_seats) VALUES
    (1, 'free', 0, 5),
    (2, 'team', 2900, 50),
    (3, 'enterprise', 49900, NULL);

CREATE TABLE organizations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    -- PostgreSQL: slug ~ '^[a-z0-9][a-z0-9-]*$', here as GLOBs.
    slug       TEXT NOT NULL UNIQUE
               CHECK (slug GLOB '[a-z0-9]*' AND slug NOT GLOB '*[^a-z0-9-]*'),
    plan_id    INTEGER NOT NULL DEFAULT 1 REFERENCES plans (id) ON DELETE RESTRICT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    -- PostgreSQL's email_address domain (VALUE ~ '^[^@[:space:]]+@[^@[:space:]]+$') as a CHECK:
    -- one '@' with text on both sides, and no whitespace.
    email         TEXT NOT NULL UNIQUE
                  CHECK (email GLOB '?*@?*' AND email NOT GLOB '*@*@*'
                         AND email NOT GLOB '*[' || char(9, 10, 11, 12, 13, 32) || ']*'),
    display_name  TEXT NOT NULL,
    is_admin      BOOLEAN NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    -- Self-reference: who invited this user.
    invited_by_id INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- A name that must be quoted: mixed case, for the table and a column.
CREATE TABLE "UserPreferences" (
    user_id     INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    "themeName" TEXT NOT NULL DEFAULT 'light',
    timezone    TEXT NOT NULL DEFAULT 'UTC',
    -- varchar(16): SQLite does not enforce lengths, so a CHECK does.
    locale      TEXT NOT NULL DEFAULT 'en' CHECK (length(locale) <= 16)
);

-- Composite primary key.
CREATE TABLE memberships (
    organization_id INTEGER NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id         INTEGER NOT NULL DEFAULT 3 REFERENCES roles (id) ON DELETE RESTRICT,
    joined_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (organization_id, user_id)
);

CREATE TABLE teams (
    id              INTEGER PRIMARY KEY,
    organization_id INTEGER NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    -- Two-column unique constraint.
    UNIQUE (organization_id, name)
);

CREATE TABLE team_members (
    team_id INTEGER NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (team_id, user_id)
);

-- uuid columns are TEXT with a random (version 4) hyphenated UUID as default, in place of
-- gen_random_uuid().
CREATE TABLE sessions (
    id         TEXT PRIMARY KEY NOT NULL DEFAULT (
                   lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4'
                   || substr(lower(hex(randomblob(2))), 2) || '-'
                   || substr('89ab', 1 + (abs(random()) % 4), 1)
                   || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))),
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- inet: text, loosely checked (hex digits, '.', ':' and a '/' prefix length only).
    ip         TEXT NOT NULL CHECK (ip <> '' AND ip NOT GLOB '*[^0-9A-Fa-f.:/]*'),
    user_agent TEXT,
    expires_at TEXT NOT NULL
);

CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY NOT NULL DEFAULT (
                   lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4'
                   || substr(lower(hex(randomblob(2))), 2) || '-'
                   || substr('89ab', 1 + (abs(random()) % 4), 1)
                   || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))),
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    -- text[]: a JSON array of strings.
    scopes     TEXT NOT NULL DEFAULT '[]'
               CHECK (json_valid(scopes) AND json_type(scopes) = 'array'),
    expires_at TEXT
);
