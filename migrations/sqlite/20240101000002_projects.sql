-- Projects and their issues: the heart of the tracker.
-- SQLite port of ../20240101000002_projects.sql. The issue_priority enum is a CHECK on text;
-- regex CHECKs are GLOBs; jsonb is JSON text; date is 'YYYY-MM-DD' text.

CREATE TABLE projects (
    id              TEXT PRIMARY KEY NOT NULL DEFAULT (
                        lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4'
                        || substr(lower(hex(randomblob(2))), 2) || '-'
                        || substr('89ab', 1 + (abs(random()) % 4), 1)
                        || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))),
    organization_id INTEGER NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    -- PostgreSQL: varchar(10), key ~ '^[A-Z][A-Z0-9]{1,9}$'.
    key             TEXT NOT NULL
                    CHECK (key GLOB '[A-Z]*' AND key NOT GLOB '*[^A-Z0-9]*'
                           AND length(key) BETWEEN 2 AND 10),
    name            TEXT NOT NULL,
    lead_id         INTEGER REFERENCES users (id) ON DELETE RESTRICT,
    archived        BOOLEAN NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (organization_id, key)
);

CREATE TABLE project_members (
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    can_admin  BOOLEAN NOT NULL DEFAULT 0 CHECK (can_admin IN (0, 1)),
    PRIMARY KEY (project_id, user_id)
);

-- Composite foreign key onto a composite primary key.
CREATE TABLE notification_preferences (
    project_id TEXT NOT NULL,
    user_id    INTEGER NOT NULL,
    on_mention BOOLEAN NOT NULL DEFAULT 1 CHECK (on_mention IN (0, 1)),
    on_assign  BOOLEAN NOT NULL DEFAULT 1 CHECK (on_assign IN (0, 1)),
    digest     TEXT NOT NULL DEFAULT 'daily' CHECK (digest IN ('never', 'daily', 'weekly')),
    PRIMARY KEY (project_id, user_id),
    FOREIGN KEY (project_id, user_id)
        REFERENCES project_members (project_id, user_id) ON DELETE CASCADE
);

-- A two-table foreign-key cycle: a board has columns, and a default column that is one of them.
-- boards.default_column_id is nullable and DEFERRABLE; board_columns.board_id is neither.
-- SQLite cannot ALTER TABLE ... ADD CONSTRAINT, so the cycle's foreign key is declared inline,
-- as a forward reference to board_columns (created just below).
CREATE TABLE boards (
    id                INTEGER PRIMARY KEY,
    project_id        TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    default_column_id INTEGER
                      REFERENCES board_columns (id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE board_columns (
    id        INTEGER PRIMARY KEY,
    board_id  INTEGER NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    name      TEXT NOT NULL,
    position  INTEGER NOT NULL CHECK (position >= 0),
    wip_limit INTEGER CHECK (wip_limit > 0),
    UNIQUE (board_id, position)
);

CREATE TABLE milestones (
    id         INTEGER PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    title      TEXT NOT NULL,
    due_on     TEXT
);

CREATE TABLE issue_statuses (
    id        INTEGER PRIMARY KEY,
    name      TEXT NOT NULL UNIQUE,
    is_closed BOOLEAN NOT NULL CHECK (is_closed IN (0, 1))
);
INSERT INTO issue_statuses (id, name, is_closed) VALUES
    (1, 'open', 0),
    (2, 'in progress', 0),
    (3, 'in review', 0),
    (4, 'done', 1),
    (5, 'won''t do', 1);

CREATE TABLE issues (
    id              INTEGER PRIMARY KEY,
    project_id      TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    number          INTEGER NOT NULL CHECK (number > 0),
    title           TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description     TEXT,
    -- PostgreSQL enum issue_priority.
    priority        TEXT NOT NULL DEFAULT 'medium'
                    CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    status_id       INTEGER NOT NULL DEFAULT 1 REFERENCES issue_statuses (id) ON DELETE RESTRICT,
    reporter_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    assignee_id     INTEGER REFERENCES users (id) ON DELETE SET NULL,
    milestone_id    INTEGER REFERENCES milestones (id) ON DELETE SET NULL,
    column_id       INTEGER REFERENCES board_columns (id) ON DELETE SET NULL,
    estimate_points INTEGER CHECK (estimate_points BETWEEN 0 AND 100),
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (project_id, number)
);

CREATE TABLE labels (
    id         INTEGER PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    -- PostgreSQL: char(7), color ~ '^#[0-9a-f]{6}$'.
    color      TEXT NOT NULL DEFAULT '#888888'
               CHECK (color GLOB '#[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'),
    UNIQUE (project_id, name)
);

CREATE TABLE issue_labels (
    issue_id INTEGER NOT NULL REFERENCES issues (id) ON DELETE CASCADE,
    label_id INTEGER NOT NULL REFERENCES labels (id) ON DELETE CASCADE,
    PRIMARY KEY (issue_id, label_id)
);

-- Self-reference: threaded comments.
CREATE TABLE comments (
    id         INTEGER PRIMARY KEY,
    issue_id   INTEGER NOT NULL REFERENCES issues (id) ON DELETE CASCADE,
    author_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    parent_id  INTEGER REFERENCES comments (id) ON DELETE CASCADE,
    body       TEXT NOT NULL CHECK (length(body) > 0),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE attachments (
    id           TEXT PRIMARY KEY NOT NULL DEFAULT (
                     lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4'
                     || substr(lower(hex(randomblob(2))), 2) || '-'
                     || substr('89ab', 1 + (abs(random()) % 4), 1)
                     || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))),
    comment_id   INTEGER NOT NULL REFERENCES comments (id) ON DELETE CASCADE,
    file_name    TEXT NOT NULL,
    content_type TEXT NOT NULL DEFAULT 'application/octet-stream',
    size_bytes   INTEGER NOT NULL CHECK (size_bytes > 0),
    uploaded_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE issue_watchers (
    issue_id INTEGER NOT NULL REFERENCES issues (id) ON DELETE CASCADE,
    user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (issue_id, user_id)
);

CREATE TABLE notifications (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issue_id   INTEGER REFERENCES issues (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    -- jsonb: JSON text.
    payload    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(payload)),
    read_at    TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- PostgreSQL partitions this table by range of spent_on (time_entries_2025, _2026, _default);
-- SQLite has no partitions, so it is one ordinary table. PostgreSQL's primary key is
-- (id, spent_on) only because a partitioned table's key must hold the partition key: here id
-- alone is the key (a rowid alias), and (id, spent_on) stays as a unique constraint.
CREATE TABLE time_entries (
    id       INTEGER PRIMARY KEY,
    issue_id INTEGER NOT NULL REFERENCES issues (id) ON DELETE CASCADE,
    user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    spent_on TEXT NOT NULL,
    minutes  INTEGER NOT NULL CHECK (minutes > 0 AND minutes <= 1440),
    note     TEXT,
    UNIQUE (id, spent_on)
);
