-- A schema only the definer test of mysql_processes uses: its view is defined by the account
-- that migrates the template, and copied by a user that may not name another account.
CREATE TABLE items (
    id   BIGINT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(100) NOT NULL
) ENGINE=InnoDB;

CREATE VIEW item_names AS SELECT name FROM items;
