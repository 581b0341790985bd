-- An application whose code connects as seedbed_app: row-level security on notes, a table it
-- is not granted, and a SECURITY DEFINER function that reads it on its behalf.
CREATE TABLE notes (
    id    bigserial PRIMARY KEY,
    owner text NOT NULL DEFAULT current_user,
    body  text NOT NULL
);
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_notes ON notes USING (owner = current_user) WITH CHECK (owner = current_user);

CREATE TABLE secrets (id int PRIMARY KEY, body text NOT NULL);
INSERT INTO secrets VALUES (1, 'hidden');

CREATE FUNCTION count_secrets() RETURNS bigint LANGUAGE sql SECURITY DEFINER
    AS 'SELECT count(*) FROM secrets';

-- Somebody else's note, which the role must not see.
INSERT INTO notes (owner, body) VALUES ('someone_else', 'not yours');

GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO seedbed_app;
GRANT USAGE ON SEQUENCE notes_id_seq TO seedbed_app;
REVOKE EXECUTE ON FUNCTION count_secrets() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION count_secrets() TO seedbed_app;
