-- A table keyed by columns the model writes itself (no AUTO_INCREMENT), with a trigger that
-- changes a written value: what the factory reads back comes from the table.
CREATE TABLE tags (
    org_id BIGINT NOT NULL,
    code VARCHAR(20) NOT NULL,
    label VARCHAR(50) NOT NULL,
    PRIMARY KEY (org_id, code),
    CONSTRAINT tags_org_fk FOREIGN KEY (org_id) REFERENCES orgs (id)
) ENGINE=InnoDB;

CREATE TRIGGER tags_label_upper BEFORE INSERT ON tags
    FOR EACH ROW SET NEW.label = UPPER(NEW.label);
