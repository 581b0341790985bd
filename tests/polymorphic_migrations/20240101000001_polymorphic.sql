-- Polymorphic associations, as Rails and Laravel store them: a type column and an id column,
-- no foreign key (none can point at two tables), a CHECK on the type names.
CREATE TABLE articles (
    id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title text NOT NULL
);

CREATE TABLE videos (
    id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url text NOT NULL UNIQUE
);

CREATE TABLE comments (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    commentable_type text NOT NULL CHECK (commentable_type IN ('Article', 'video')),
    commentable_id   bigint NOT NULL,
    body             text NOT NULL
);

-- An optional one: both columns NULL, or both set.
CREATE TABLE taggings (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject_kind text CHECK (subject_kind IN ('Article', 'video')),
    subject_id   bigint,
    tag          text NOT NULL,
    CHECK ((subject_kind IS NULL) = (subject_id IS NULL))
);
