-- A down migration: never applied.
DROP TABLE notes;
