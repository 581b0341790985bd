-- The MySQL tests' schema: a lookup table with rows, users and posts, a foreign-key cycle, an
-- ENUM, a trigger and a generated column.
CREATE TABLE roles (
    id INT PRIMARY KEY,
    name VARCHAR(40) NOT NULL UNIQUE
) ENGINE=InnoDB;

INSERT INTO roles (id, name) VALUES (1, 'admin'), (2, 'member');

CREATE TABLE users (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    email VARCHAR(190) NOT NULL UNIQUE,
    role_id INT NOT NULL DEFAULT 2,
    status ENUM('active', 'suspended') NOT NULL DEFAULT 'active',
    email_domain VARCHAR(190) AS (SUBSTRING_INDEX(email, '@', -1)) VIRTUAL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT users_role_fk FOREIGN KEY (role_id) REFERENCES roles (id)
) ENGINE=InnoDB;

CREATE TABLE posts (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    title VARCHAR(200) NOT NULL,
    CONSTRAINT posts_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB;

CREATE TABLE post_counts (
    user_id BIGINT PRIMARY KEY,
    posts INT NOT NULL
) ENGINE=InnoDB;

CREATE TRIGGER posts_count AFTER INSERT ON posts FOR EACH ROW
    INSERT INTO post_counts (user_id, posts) VALUES (NEW.user_id, 1)
    ON DUPLICATE KEY UPDATE posts = posts + 1;

-- A cycle: a board's default column is one of its columns.
CREATE TABLE boards (
    id BIGINT PRIMARY KEY,
    default_column_id BIGINT NULL
) ENGINE=InnoDB;

CREATE TABLE board_columns (
    id BIGINT PRIMARY KEY,
    board_id BIGINT NOT NULL,
    CONSTRAINT board_columns_board_fk FOREIGN KEY (board_id) REFERENCES boards (id)
) ENGINE=InnoDB;

ALTER TABLE boards ADD CONSTRAINT boards_default_column_fk
    FOREIGN KEY (default_column_id) REFERENCES board_columns (id);

CREATE VIEW active_users AS SELECT id, email FROM users WHERE status = 'active';
