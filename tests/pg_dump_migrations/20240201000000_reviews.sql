-- Written after the dump, as migrations usually are: unqualified names, the default search_path.
CREATE TABLE reviews (
    id bigserial PRIMARY KEY,
    book_id bigint NOT NULL REFERENCES books (id),
    stars int NOT NULL CHECK (stars BETWEEN 1 AND 5)
);
