-- Audit trail written by triggers; a view for the common query.
-- MySQL 8 / MariaDB 10.6+ port of ../20240101000004_audit.sql. A MySQL schema is a database, and
-- the application's tables live in one, so PostgreSQL's audit.issue_events is the table
-- issue_events beside them. MySQL has no trigger functions and no INSERT OR UPDATE OR DELETE
-- trigger, so audit.record_issue_change() becomes three row triggers, each one INSERT (no
-- BEGIN ... END, so the file runs as one multi-statement string and through the mysql client
-- alike), and to_jsonb(row) becomes JSON_OBJECT() over the issue's columns. InnoDB does not fire
-- triggers for the rows its foreign-key actions change: an issue removed by deleting its project,
-- or whose assignee, milestone or column a delete set to NULL, is not recorded (PostgreSQL
-- records both).

CREATE TABLE issue_events (
    id         BIGINT NOT NULL AUTO_INCREMENT,
    issue_id   BIGINT NOT NULL,
    action     VARCHAR(16) NOT NULL,
    old_row    JSON NULL,
    new_row    JSON NULL,
    changed_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    CONSTRAINT issue_events_action_check CHECK (action IN ('INSERT', 'UPDATE', 'DELETE'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TRIGGER issues_audit_insert
AFTER INSERT ON issues
FOR EACH ROW
    INSERT INTO issue_events (issue_id, action, old_row, new_row)
    VALUES (NEW.id, 'INSERT', NULL, JSON_OBJECT(
        'id', NEW.id, 'project_id', NEW.project_id, 'number', NEW.number,
        'title', NEW.title, 'description', NEW.description, 'priority', NEW.priority,
        'status_id', NEW.status_id, 'reporter_id', NEW.reporter_id,
        'assignee_id', NEW.assignee_id, 'milestone_id', NEW.milestone_id,
        'column_id', NEW.column_id, 'estimate_points', NEW.estimate_points,
        'created_at', NEW.created_at, 'updated_at', NEW.updated_at));

CREATE TRIGGER issues_audit_update
AFTER UPDATE ON issues
FOR EACH ROW
    INSERT INTO issue_events (issue_id, action, old_row, new_row)
    VALUES (NEW.id, 'UPDATE', JSON_OBJECT(
        'id', OLD.id, 'project_id', OLD.project_id, 'number', OLD.number,
        'title', OLD.title, 'description', OLD.description, 'priority', OLD.priority,
        'status_id', OLD.status_id, 'reporter_id', OLD.reporter_id,
        'assignee_id', OLD.assignee_id, 'milestone_id', OLD.milestone_id,
        'column_id', OLD.column_id, 'estimate_points', OLD.estimate_points,
        'created_at', OLD.created_at, 'updated_at', OLD.updated_at), JSON_OBJECT(
        'id', NEW.id, 'project_id', NEW.project_id, 'number', NEW.number,
        'title', NEW.title, 'description', NEW.description, 'priority', NEW.priority,
        'status_id', NEW.status_id, 'reporter_id', NEW.reporter_id,
        'assignee_id', NEW.assignee_id, 'milestone_id', NEW.milestone_id,
        'column_id', NEW.column_id, 'estimate_points', NEW.estimate_points,
        'created_at', NEW.created_at, 'updated_at', NEW.updated_at));

CREATE TRIGGER issues_audit_delete
AFTER DELETE ON issues
FOR EACH ROW
    INSERT INTO issue_events (issue_id, action, old_row, new_row)
    VALUES (OLD.id, 'DELETE', JSON_OBJECT(
        'id', OLD.id, 'project_id', OLD.project_id, 'number', OLD.number,
        'title', OLD.title, 'description', OLD.description, 'priority', OLD.priority,
        'status_id', OLD.status_id, 'reporter_id', OLD.reporter_id,
        'assignee_id', OLD.assignee_id, 'milestone_id', OLD.milestone_id,
        'column_id', OLD.column_id, 'estimate_points', OLD.estimate_points,
        'created_at', OLD.created_at, 'updated_at', OLD.updated_at), NULL);

CREATE VIEW open_issues AS
    SELECT i.id, i.project_id, i.number, i.title, i.priority, s.name AS status, i.assignee_id
    FROM issues i
    JOIN issue_statuses s ON s.id = i.status_id
    WHERE NOT s.is_closed;
