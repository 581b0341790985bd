-- Keys Namespace's journal must match exactly: a binary key (UUID_TO_BIN-style) and unsigned
-- integers past 2^53.
CREATE TABLE api_keys (
    id BINARY(16) PRIMARY KEY,
    label VARCHAR(40) NOT NULL
) ENGINE=InnoDB;

CREATE TABLE snowflakes (
    id BIGINT UNSIGNED PRIMARY KEY,
    label VARCHAR(40) NOT NULL
) ENGINE=InnoDB;
