-- Audit trail in its own schema, written by a trigger; a view for the common query.

CREATE SCHEMA audit;

CREATE TABLE audit.issue_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    issue_id   bigint NOT NULL,
    action     text NOT NULL CHECK (action IN ('INSERT', 'UPDATE', 'DELETE')),
    old_row    jsonb,
    new_row    jsonb,
    changed_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION audit.record_issue_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO audit.issue_events (issue_id, action, old_row)
        VALUES (OLD.id, TG_OP, to_jsonb(OLD));
        RETURN OLD;
    END IF;
    INSERT INTO audit.issue_events (issue_id, action, old_row, new_row)
    VALUES (NEW.id, TG_OP, CASE WHEN TG_OP = 'UPDATE' THEN to_jsonb(OLD) END, to_jsonb(NEW));
    RETURN NEW;
END;
$$;

CREATE TRIGGER issues_audit
    AFTER INSERT OR UPDATE OR DELETE ON issues
    FOR EACH ROW EXECUTE FUNCTION audit.record_issue_change();

CREATE VIEW open_issues AS
    SELECT i.id, i.project_id, i.number, i.title, i.priority, s.name AS status, i.assignee_id
    FROM issues i
    JOIN issue_statuses s ON s.id = i.status_id
    WHERE NOT s.is_closed;
