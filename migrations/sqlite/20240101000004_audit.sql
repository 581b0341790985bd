-- Audit trail written by triggers; a view for the common query.
-- SQLite port of ../20240101000004_audit.sql. SQLite has no second schema (short of ATTACH), so
-- PostgreSQL's audit.issue_events is the ordinary table issue_events in main. SQLite has no
-- trigger functions and no INSERT OR UPDATE OR DELETE trigger, so audit.record_issue_change()
-- becomes three row triggers, and to_jsonb(row) becomes json_object() over the issue's columns.

CREATE TABLE issue_events (
    id         INTEGER PRIMARY KEY,
    issue_id   INTEGER NOT NULL,
    action     TEXT NOT NULL CHECK (action IN ('INSERT', 'UPDATE', 'DELETE')),
    old_row    TEXT CHECK (old_row IS NULL OR json_valid(old_row)),
    new_row    TEXT CHECK (new_row IS NULL OR json_valid(new_row)),
    changed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TRIGGER issues_audit_insert
AFTER INSERT ON issues
FOR EACH ROW
BEGIN
    INSERT INTO issue_events (issue_id, action, old_row, new_row)
    VALUES (NEW.id, 'INSERT', NULL, json_object(
        'id', NEW.id, 'project_id', NEW.project_id, 'number', NEW.number,
        'title', NEW.title, 'description', NEW.description, 'priority', NEW.priority,
        'status_id', NEW.status_id, 'reporter_id', NEW.reporter_id,
        'assignee_id', NEW.assignee_id, 'milestone_id', NEW.milestone_id,
        'column_id', NEW.column_id, 'estimate_points', NEW.estimate_points,
        'created_at', NEW.created_at, 'updated_at', NEW.updated_at));
END;

CREATE TRIGGER issues_audit_update
AFTER UPDATE ON issues
FOR EACH ROW
BEGIN
    INSERT INTO issue_events (issue_id, action, old_row, new_row)
    VALUES (NEW.id, 'UPDATE', json_object(
        'id', OLD.id, 'project_id', OLD.project_id, 'number', OLD.number,
        'title', OLD.title, 'description', OLD.description, 'priority', OLD.priority,
        'status_id', OLD.status_id, 'reporter_id', OLD.reporter_id,
        'assignee_id', OLD.assignee_id, 'milestone_id', OLD.milestone_id,
        'column_id', OLD.column_id, 'estimate_points', OLD.estimate_points,
        'created_at', OLD.created_at, 'updated_at', OLD.updated_at), json_object(
        'id', NEW.id, 'project_id', NEW.project_id, 'number', NEW.number,
        'title', NEW.title, 'description', NEW.description, 'priority', NEW.priority,
        'status_id', NEW.status_id, 'reporter_id', NEW.reporter_id,
        'assignee_id', NEW.assignee_id, 'milestone_id', NEW.milestone_id,
        'column_id', NEW.column_id, 'estimate_points', NEW.estimate_points,
        'created_at', NEW.created_at, 'updated_at', NEW.updated_at));
END;

CREATE TRIGGER issues_audit_delete
AFTER DELETE ON issues
FOR EACH ROW
BEGIN
    INSERT INTO issue_events (issue_id, action, old_row, new_row)
    VALUES (OLD.id, 'DELETE', json_object(
        'id', OLD.id, 'project_id', OLD.project_id, 'number', OLD.number,
        'title', OLD.title, 'description', OLD.description, 'priority', OLD.priority,
        'status_id', OLD.status_id, 'reporter_id', OLD.reporter_id,
        'assignee_id', OLD.assignee_id, 'milestone_id', OLD.milestone_id,
        'column_id', OLD.column_id, 'estimate_points', OLD.estimate_points,
        'created_at', OLD.created_at, 'updated_at', OLD.updated_at), NULL);
END;

CREATE VIEW open_issues AS
    SELECT i.id, i.project_id, i.number, i.title, i.priority, s.name AS status, i.assignee_id
    FROM issues i
    JOIN issue_statuses s ON s.id = i.status_id
    WHERE NOT s.is_closed;
