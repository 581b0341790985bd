CREATE TABLE orgs (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    slug VARCHAR(100) NOT NULL,
    name VARCHAR(100) NOT NULL,
    CONSTRAINT orgs_slug_key UNIQUE (slug),
    CONSTRAINT orgs_name_present CHECK (CHAR_LENGTH(name) > 0)
) ENGINE=InnoDB;

CREATE TABLE members (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    org_id BIGINT NOT NULL,
    email VARCHAR(190) NOT NULL,
    admin BOOL NOT NULL DEFAULT FALSE,
    plan ENUM('free', 'pro') NOT NULL DEFAULT 'free',
    joined TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT members_email_key UNIQUE (email),
    CONSTRAINT members_org_fk FOREIGN KEY (org_id) REFERENCES orgs (id)
) ENGINE=InnoDB;

CREATE TABLE boards (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    default_column_id BIGINT NULL
) ENGINE=InnoDB;

CREATE TABLE board_columns (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    board_id BIGINT NOT NULL,
    name VARCHAR(100) NOT NULL,
    CONSTRAINT board_columns_board_fk FOREIGN KEY (board_id) REFERENCES boards (id)
) ENGINE=InnoDB;

ALTER TABLE boards ADD CONSTRAINT boards_default_column_fk
    FOREIGN KEY (default_column_id) REFERENCES board_columns (id);
