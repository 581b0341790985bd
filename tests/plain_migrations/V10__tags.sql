-- migrate:up
-- dbmate's sections: only this one is applied. It needs V2's table, so V10 must come after V2.
CREATE TABLE note_tags (
    note_id bigint NOT NULL REFERENCES notes (id),
    tag     text NOT NULL,
    PRIMARY KEY (note_id, tag)
);

-- migrate:down
DROP TABLE note_tags;
DROP TABLE notes;
