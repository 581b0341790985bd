-- The polymorphic tables of tests/polymorphic_migrations, on SQLite.
CREATE TABLE articles (
    id    INTEGER PRIMARY KEY,
    title TEXT NOT NULL
);

CREATE TABLE videos (
    id  INTEGER PRIMARY KEY,
    url TEXT NOT NULL UNIQUE
);

CREATE TABLE comments (
    id               INTEGER PRIMARY KEY,
    commentable_type TEXT NOT NULL CHECK (commentable_type IN ('Article', 'video')),
    commentable_id   INTEGER NOT NULL,
    body             TEXT NOT NULL
);

CREATE TABLE taggings (
    id           INTEGER PRIMARY KEY,
    subject_kind TEXT CHECK (subject_kind IN ('Article', 'video')),
    subject_id   INTEGER,
    tag          TEXT NOT NULL,
    CHECK ((subject_kind IS NULL) = (subject_id IS NULL))
);
