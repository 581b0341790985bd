-- The SQLite isolation tests' schema: a lookup table filled by the migration, an AUTOINCREMENT
-- table, a child with a foreign key, and a two-table foreign-key cycle.
CREATE TABLE roles (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
INSERT INTO roles (id, name) VALUES (1, 'admin'), (2, 'member');

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL UNIQUE,
    role_id INTEGER NOT NULL DEFAULT 2 REFERENCES roles (id)
);

CREATE TABLE posts (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title TEXT NOT NULL
);

CREATE TABLE boards (
    id INTEGER PRIMARY KEY,
    default_column_id INTEGER REFERENCES columns (id) DEFERRABLE INITIALLY DEFERRED
);
CREATE TABLE columns (
    id INTEGER PRIMARY KEY,
    board_id INTEGER NOT NULL REFERENCES boards (id)
);

-- A parent whose name sorts before its child's, the child's key RESTRICT (checked at once), and
-- an audit table the child's delete trigger writes.
CREATE TABLE labels (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE notes (
    id INTEGER PRIMARY KEY,
    label_id INTEGER NOT NULL REFERENCES labels (id) ON DELETE RESTRICT
);
CREATE TABLE note_events (note_id INTEGER NOT NULL, what TEXT NOT NULL);
CREATE TRIGGER notes_audit AFTER DELETE ON notes
BEGIN
    INSERT INTO note_events (note_id, what) VALUES (OLD.id, 'deleted');
END;
