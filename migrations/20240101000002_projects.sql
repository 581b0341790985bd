-- Projects and their issues: the heart of the tracker.

CREATE TYPE issue_priority AS ENUM ('low', 'medium', 'high', 'urgent');

CREATE TABLE projects (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id bigint NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    key             varchar(10) NOT NULL CHECK (key ~ '^[A-Z][A-Z0-9]{1,9}$'),
    name            text NOT NULL,
    lead_id         bigint REFERENCES users (id) ON DELETE RESTRICT,
    archived        boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, key)
);

CREATE TABLE project_members (
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    can_admin  boolean NOT NULL DEFAULT false,
    PRIMARY KEY (project_id, user_id)
);

-- Composite foreign key onto a composite primary key.
CREATE TABLE notification_preferences (
    project_id uuid NOT NULL,
    user_id    bigint NOT NULL,
    on_mention boolean NOT NULL DEFAULT true,
    on_assign  boolean NOT NULL DEFAULT true,
    digest     text NOT NULL DEFAULT 'daily' CHECK (digest IN ('never', 'daily', 'weekly')),
    PRIMARY KEY (project_id, user_id),
    FOREIGN KEY (project_id, user_id)
        REFERENCES project_members (project_id, user_id) ON DELETE CASCADE
);

-- A two-table foreign-key cycle: a board has columns, and a default column that is one of them.
-- boards.default_column_id is nullable and DEFERRABLE; board_columns.board_id is neither.
CREATE TABLE boards (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id        uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name              text NOT NULL,
    default_column_id bigint
);

CREATE TABLE board_columns (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    board_id bigint NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    name     text NOT NULL,
    position integer NOT NULL CHECK (position >= 0),
    wip_limit integer CHECK (wip_limit > 0),
    UNIQUE (board_id, position)
);

ALTER TABLE boards
    ADD CONSTRAINT boards_default_column_id_fkey FOREIGN KEY (default_column_id)
        REFERENCES board_columns (id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE milestones (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    title      text NOT NULL,
    due_on     date
);

CREATE TABLE issue_statuses (
    id        smallint PRIMARY KEY,
    name      text NOT NULL UNIQUE,
    is_closed boolean NOT NULL
);
INSERT INTO issue_statuses (id, name, is_closed) VALUES
    (1, 'open', false),
    (2, 'in progress', false),
    (3, 'in review', false),
    (4, 'done', true),
    (5, 'won''t do', true);

CREATE TABLE issues (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id      uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    number          integer NOT NULL CHECK (number > 0),
    title           text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description     text,
    priority        issue_priority NOT NULL DEFAULT 'medium',
    status_id       smallint NOT NULL DEFAULT 1 REFERENCES issue_statuses (id) ON DELETE RESTRICT,
    reporter_id     bigint NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    assignee_id     bigint REFERENCES users (id) ON DELETE SET NULL,
    milestone_id    bigint REFERENCES milestones (id) ON DELETE SET NULL,
    column_id       bigint REFERENCES board_columns (id) ON DELETE SET NULL,
    estimate_points integer CHECK (estimate_points BETWEEN 0 AND 100),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, number)
);

CREATE TABLE labels (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name       text NOT NULL,
    color      char(7) NOT NULL DEFAULT '#888888' CHECK (color ~ '^#[0-9a-f]{6}$'),
    UNIQUE (project_id, name)
);

CREATE TABLE issue_labels (
    issue_id bigint NOT NULL REFERENCES issues (id) ON DELETE CASCADE,
    label_id bigint NOT NULL REFERENCES labels (id) ON DELETE CASCADE,
    PRIMARY KEY (issue_id, label_id)
);

-- Self-reference: threaded comments.
CREATE TABLE comments (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    issue_id   bigint NOT NULL REFERENCES issues (id) ON DELETE CASCADE,
    author_id  bigint NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    parent_id  bigint REFERENCES comments (id) ON DELETE CASCADE,
    body       text NOT NULL CHECK (length(body) > 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE attachments (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    comment_id   bigint NOT NULL REFERENCES comments (id) ON DELETE CASCADE,
    file_name    text NOT NULL,
    content_type text NOT NULL DEFAULT 'application/octet-stream',
    size_bytes   bigint NOT NULL CHECK (size_bytes > 0),
    uploaded_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE issue_watchers (
    issue_id bigint NOT NULL REFERENCES issues (id) ON DELETE CASCADE,
    user_id  bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (issue_id, user_id)
);

CREATE TABLE notifications (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issue_id   bigint REFERENCES issues (id) ON DELETE CASCADE,
    kind       text NOT NULL,
    payload    jsonb NOT NULL DEFAULT '{}',
    read_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A declaratively partitioned table.
CREATE TABLE time_entries (
    id       bigint GENERATED ALWAYS AS IDENTITY,
    issue_id bigint NOT NULL REFERENCES issues (id) ON DELETE CASCADE,
    user_id  bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    spent_on date NOT NULL,
    minutes  integer NOT NULL CHECK (minutes > 0 AND minutes <= 1440),
    note     text,
    PRIMARY KEY (id, spent_on)
) PARTITION BY RANGE (spent_on);

CREATE TABLE time_entries_2025 PARTITION OF time_entries
    FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE time_entries_2026 PARTITION OF time_entries
    FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE time_entries_default PARTITION OF time_entries DEFAULT;
