-- A schema only the connection-budget tests use: they run as users made for them, whose
-- copies of the template define its view as themselves (see tests/mysql_budget.rs).
CREATE TABLE items (
    id   BIGINT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(100) NOT NULL
) ENGINE=InnoDB;

CREATE VIEW item_names AS SELECT name FROM items;
