-- Projects and their issues: the heart of the tracker.
-- MySQL 8 / MariaDB 10.6+ port of ../20240101000002_projects.sql. The issue_priority enum is an
-- ENUM column; regex CHECKs use REGEXP; length() is CHAR_LENGTH() (MySQL's LENGTH() counts
-- bytes); jsonb is JSON; issues.updated_at moves itself with ON UPDATE CURRENT_TIMESTAMP. The
-- board cycle's closing key cannot be deferred (MySQL has no deferrable keys), and time_entries
-- is not partitioned (an InnoDB table with foreign keys cannot be).

CREATE TABLE projects (
    id              CHAR(36) NOT NULL DEFAULT (UUID()),
    organization_id BIGINT NOT NULL,
    -- `key` is a reserved word in MySQL: quote it.
    `key`           VARCHAR(10) NOT NULL,
    name            TEXT NOT NULL,
    lead_id         BIGINT NULL,
    archived        BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    CONSTRAINT projects_organization_id_key_key UNIQUE (organization_id, `key`),
    -- PostgreSQL: key ~ '^[A-Z][A-Z0-9]{1,9}$'; VARCHAR(10) bounds the length, and "nothing
    -- outside the set" replaces `$`, which here also matches before a final newline.
    CONSTRAINT projects_key_check
        CHECK (`key` REGEXP '^[A-Z][A-Z0-9]' AND `key` NOT REGEXP '[^A-Z0-9]'),
    CONSTRAINT projects_organization_id_fkey FOREIGN KEY (organization_id)
        REFERENCES organizations (id) ON DELETE CASCADE,
    CONSTRAINT projects_lead_id_fkey FOREIGN KEY (lead_id)
        REFERENCES users (id) ON DELETE RESTRICT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE project_members (
    project_id CHAR(36) NOT NULL,
    user_id    BIGINT NOT NULL,
    can_admin  BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (project_id, user_id),
    CONSTRAINT project_members_project_id_fkey FOREIGN KEY (project_id)
        REFERENCES projects (id) ON DELETE CASCADE,
    CONSTRAINT project_members_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Composite foreign key onto a composite primary key.
CREATE TABLE notification_preferences (
    project_id CHAR(36) NOT NULL,
    user_id    BIGINT NOT NULL,
    on_mention BOOLEAN NOT NULL DEFAULT TRUE,
    on_assign  BOOLEAN NOT NULL DEFAULT TRUE,
    digest     VARCHAR(16) NOT NULL DEFAULT 'daily',
    PRIMARY KEY (project_id, user_id),
    CONSTRAINT notification_preferences_digest_check
        CHECK (digest IN ('never', 'daily', 'weekly')),
    CONSTRAINT notification_preferences_project_id_user_id_fkey FOREIGN KEY (project_id, user_id)
        REFERENCES project_members (project_id, user_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- A two-table foreign-key cycle: a board has columns, and a default column that is one of them.
-- boards.default_column_id is nullable; board_columns.board_id is not. PostgreSQL defers the
-- cycle's key (DEFERRABLE INITIALLY DEFERRED); MySQL checks every key at once, so a board is
-- written with a NULL default column, then its columns, then the default set (or the rows are
-- written with FOREIGN_KEY_CHECKS = 0). The key is added once board_columns exists.
CREATE TABLE boards (
    id                BIGINT NOT NULL AUTO_INCREMENT,
    project_id        CHAR(36) NOT NULL,
    name              TEXT NOT NULL,
    default_column_id BIGINT NULL,
    PRIMARY KEY (id),
    CONSTRAINT boards_project_id_fkey FOREIGN KEY (project_id)
        REFERENCES projects (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE board_columns (
    id        BIGINT NOT NULL AUTO_INCREMENT,
    board_id  BIGINT NOT NULL,
    name      TEXT NOT NULL,
    position  INT NOT NULL,
    wip_limit INT NULL,
    PRIMARY KEY (id),
    CONSTRAINT board_columns_board_id_position_key UNIQUE (board_id, position),
    CONSTRAINT board_columns_position_check CHECK (position >= 0),
    CONSTRAINT board_columns_wip_limit_check CHECK (wip_limit > 0),
    CONSTRAINT board_columns_board_id_fkey FOREIGN KEY (board_id)
        REFERENCES boards (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

ALTER TABLE boards
    ADD CONSTRAINT boards_default_column_id_fkey FOREIGN KEY (default_column_id)
        REFERENCES board_columns (id) ON DELETE SET NULL;

CREATE TABLE milestones (
    id         BIGINT NOT NULL AUTO_INCREMENT,
    project_id CHAR(36) NOT NULL,
    title      TEXT NOT NULL,
    due_on     DATE NULL,
    PRIMARY KEY (id),
    CONSTRAINT milestones_project_id_fkey FOREIGN KEY (project_id)
        REFERENCES projects (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE issue_statuses (
    id        SMALLINT NOT NULL,
    name      VARCHAR(190) NOT NULL,
    is_closed BOOLEAN NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT issue_statuses_name_key UNIQUE (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO issue_statuses (id, name, is_closed) VALUES
    (1, 'open', FALSE),
    (2, 'in progress', FALSE),
    (3, 'in review', FALSE),
    (4, 'done', TRUE),
    (5, 'won''t do', TRUE);

CREATE TABLE issues (
    id              BIGINT NOT NULL AUTO_INCREMENT,
    project_id      CHAR(36) NOT NULL,
    number          INT NOT NULL,
    title           TEXT NOT NULL,
    description     TEXT NULL,
    -- PostgreSQL enum issue_priority (labels in the same order, so they sort alike).
    priority        ENUM('low', 'medium', 'high', 'urgent') NOT NULL DEFAULT 'medium',
    status_id       SMALLINT NOT NULL DEFAULT 1,
    reporter_id     BIGINT NOT NULL,
    assignee_id     BIGINT NULL,
    milestone_id    BIGINT NULL,
    column_id       BIGINT NULL,
    estimate_points INT NULL,
    created_at      DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    -- PostgreSQL leaves this to the application; here the server moves it on every UPDATE that
    -- changes the row (not on a foreign key's ON DELETE SET NULL, which InnoDB writes itself).
    updated_at      DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
                    ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    CONSTRAINT issues_project_id_number_key UNIQUE (project_id, number),
    CONSTRAINT issues_number_check CHECK (number > 0),
    CONSTRAINT issues_title_check CHECK (CHAR_LENGTH(title) BETWEEN 1 AND 200),
    CONSTRAINT issues_estimate_points_check CHECK (estimate_points BETWEEN 0 AND 100),
    CONSTRAINT issues_project_id_fkey FOREIGN KEY (project_id)
        REFERENCES projects (id) ON DELETE CASCADE,
    CONSTRAINT issues_status_id_fkey FOREIGN KEY (status_id)
        REFERENCES issue_statuses (id) ON DELETE RESTRICT,
    CONSTRAINT issues_reporter_id_fkey FOREIGN KEY (reporter_id)
        REFERENCES users (id) ON DELETE RESTRICT,
    CONSTRAINT issues_assignee_id_fkey FOREIGN KEY (assignee_id)
        REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT issues_milestone_id_fkey FOREIGN KEY (milestone_id)
        REFERENCES milestones (id) ON DELETE SET NULL,
    CONSTRAINT issues_column_id_fkey FOREIGN KEY (column_id)
        REFERENCES board_columns (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE labels (
    id         BIGINT NOT NULL AUTO_INCREMENT,
    project_id CHAR(36) NOT NULL,
    name       VARCHAR(190) NOT NULL,
    color      CHAR(7) NOT NULL DEFAULT '#888888',
    PRIMARY KEY (id),
    CONSTRAINT labels_project_id_name_key UNIQUE (project_id, name),
    -- CHAR(7) leaves no room for the trailing newline `$` would let through.
    CONSTRAINT labels_color_check CHECK (color REGEXP '^#[0-9a-f]{6}$'),
    CONSTRAINT labels_project_id_fkey FOREIGN KEY (project_id)
        REFERENCES projects (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE issue_labels (
    issue_id BIGINT NOT NULL,
    label_id BIGINT NOT NULL,
    PRIMARY KEY (issue_id, label_id),
    CONSTRAINT issue_labels_issue_id_fkey FOREIGN KEY (issue_id)
        REFERENCES issues (id) ON DELETE CASCADE,
    CONSTRAINT issue_labels_label_id_fkey FOREIGN KEY (label_id)
        REFERENCES labels (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Self-reference: threaded comments. (InnoDB follows cascades 15 levels deep: a thread deeper
-- than that cannot be deleted by deleting its root.)
CREATE TABLE comments (
    id         BIGINT NOT NULL AUTO_INCREMENT,
    issue_id   BIGINT NOT NULL,
    author_id  BIGINT NOT NULL,
    parent_id  BIGINT NULL,
    body       TEXT NOT NULL,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    CONSTRAINT comments_body_check CHECK (CHAR_LENGTH(body) > 0),
    CONSTRAINT comments_issue_id_fkey FOREIGN KEY (issue_id)
        REFERENCES issues (id) ON DELETE CASCADE,
    CONSTRAINT comments_author_id_fkey FOREIGN KEY (author_id)
        REFERENCES users (id) ON DELETE RESTRICT,
    CONSTRAINT comments_parent_id_fkey FOREIGN KEY (parent_id)
        REFERENCES comments (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE attachments (
    id           CHAR(36) NOT NULL DEFAULT (UUID()),
    comment_id   BIGINT NOT NULL,
    file_name    TEXT NOT NULL,
    content_type VARCHAR(255) NOT NULL DEFAULT 'application/octet-stream',
    size_bytes   BIGINT NOT NULL,
    uploaded_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    CONSTRAINT attachments_size_bytes_check CHECK (size_bytes > 0),
    CONSTRAINT attachments_comment_id_fkey FOREIGN KEY (comment_id)
        REFERENCES comments (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE issue_watchers (
    issue_id BIGINT NOT NULL,
    user_id  BIGINT NOT NULL,
    PRIMARY KEY (issue_id, user_id),
    CONSTRAINT issue_watchers_issue_id_fkey FOREIGN KEY (issue_id)
        REFERENCES issues (id) ON DELETE CASCADE,
    CONSTRAINT issue_watchers_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE notifications (
    id         BIGINT NOT NULL AUTO_INCREMENT,
    user_id    BIGINT NOT NULL,
    issue_id   BIGINT NULL,
    kind       TEXT NOT NULL,
    -- jsonb: JSON, whose default must be an expression.
    payload    JSON NOT NULL DEFAULT (JSON_OBJECT()),
    read_at    DATETIME(6) NULL,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    CONSTRAINT notifications_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT notifications_issue_id_fkey FOREIGN KEY (issue_id)
        REFERENCES issues (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- PostgreSQL partitions this table by range of spent_on (time_entries_2025, _2026, _default).
-- InnoDB refuses foreign keys on a partitioned table, and the foreign keys are kept, so here it is
-- one ordinary table and the three partitions have no counterpart. PostgreSQL's primary key is
-- (id, spent_on) only because a partitioned table's key must hold the partition key: here id
-- alone is the key, and (id, spent_on) stays as a unique constraint (as in the SQLite port).
CREATE TABLE time_entries (
    id       BIGINT NOT NULL AUTO_INCREMENT,
    issue_id BIGINT NOT NULL,
    user_id  BIGINT NOT NULL,
    spent_on DATE NOT NULL,
    minutes  INT NOT NULL,
    note     TEXT NULL,
    PRIMARY KEY (id),
    CONSTRAINT time_entries_id_spent_on_key UNIQUE (id, spent_on),
    CONSTRAINT time_entries_minutes_check CHECK (minutes > 0 AND minutes <= 1440),
    CONSTRAINT time_entries_issue_id_fkey FOREIGN KEY (issue_id)
        REFERENCES issues (id) ON DELETE CASCADE,
    CONSTRAINT time_entries_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
