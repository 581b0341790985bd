-- Flyway-style names: V1, V2, V10 go in numeric order, not in the order of their names.
CREATE TABLE accounts (
    id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL UNIQUE
);
