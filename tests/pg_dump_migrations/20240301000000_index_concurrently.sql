-- no-transaction
CREATE INDEX CONCURRENTLY books_title_idx ON books (title);
