-- A schema only the clean-note tests of mysql_processes use, so no other test leases its
-- databases between a child process's end and the test's look at them.
CREATE TABLE notes (
    id   BIGINT AUTO_INCREMENT PRIMARY KEY,
    body VARCHAR(100) NOT NULL UNIQUE
) ENGINE=InnoDB;
