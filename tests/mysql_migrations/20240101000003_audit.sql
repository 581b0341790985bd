-- An audit trail written by a trigger as rows go: removing a test's rows writes rows too.
CREATE TABLE post_log (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    post_id BIGINT NOT NULL,
    action VARCHAR(8) NOT NULL
);

CREATE TRIGGER posts_log_delete AFTER DELETE ON posts FOR EACH ROW
    INSERT INTO post_log (post_id, action) VALUES (OLD.id, 'DELETE');
