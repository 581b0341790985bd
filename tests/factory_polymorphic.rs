//! Polymorphic associations: a type column and an id column pointing at a row of any of several
//! models (`#[factory(polymorphic(types(…), type_field = …))]`), given as a builder, a graph node
//! or a row, created by default from the first type, optional, built in memory and stubbed, on
//! PostgreSQL and SQLite.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

use seedbed::factory::Graph;
use seedbed::prelude::*;
use sqlx::PgConnection;

type Result<T = (), E = seedbed::Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "articles", has_many(comments(Comment, via = commentable)))]
struct Article {
    #[factory(generated)]
    id: i64,
    #[factory(sequence = "Article {n}")]
    title: String,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "videos")]
struct Video {
    #[factory(generated)]
    id: i64,
    #[factory(sequence = "https://example.com/v/{n}")]
    url: String,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "comments")]
struct Comment {
    #[factory(generated)]
    id: i64,
    /// Type names: the model's name (`Article`), or the one given (`video`).
    #[factory(polymorphic(types(Article, Video = "video")))]
    commentable_id: i64,
    commentable_type: String,
    #[factory(default = "First!")]
    body: String,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "taggings")]
struct Tagging {
    #[factory(generated)]
    id: i64,
    #[factory(polymorphic(types(Article, Video = "video"), type_field = subject_kind))]
    subject_id: Option<i64>,
    subject_kind: Option<String>,
    #[factory(default = "rust")]
    tag: String,
}

async fn parent_of(db: &TestDb, comment: &Comment) -> String {
    let sql = match comment.commentable_type.as_str() {
        "Article" => "SELECT title FROM articles WHERE id = $1",
        "video" => "SELECT url FROM videos WHERE id = $1",
        other => panic!("unknown type {other}"),
    };
    sqlx::query_scalar(sql)
        .bind(comment.commentable_id)
        .fetch_one(&db.pool())
        .await
        .unwrap()
}

/// Unset, a required association creates a parent of the first type.
#[seedbed::test(migrations = "tests/polymorphic_migrations")]
async fn unset_creates_a_parent_of_the_first_type(db: TestDb) -> Result {
    let comment = Comment::factory().create(&db).await?;
    assert_eq!(comment.commentable_type, "Article");
    assert!(parent_of(&db, &comment).await.starts_with("Article "));
    Ok(())
}

/// Given builders of either type, in one `create_list`: each comment points at its own parent
/// of the right type, one INSERT per table.
#[seedbed::test(migrations = "tests/polymorphic_migrations")]
async fn builders_of_either_type_in_one_list(db: TestDb) -> Result {
    let comments = Comment::factory()
        .create_list_with(&db, 10, |i, c| {
            if i % 2 == 0 {
                c.commentable(Video::factory())
            } else {
                c.commentable(Article::factory().title(format!("Post {i}")))
            }
        })
        .await?;
    for (i, comment) in comments.iter().enumerate() {
        let parent = parent_of(&db, comment).await;
        if i % 2 == 0 {
            assert_eq!(comment.commentable_type, "video");
            assert!(parent.starts_with("https://example.com/v/"), "{parent}");
        } else {
            assert_eq!(comment.commentable_type, "Article");
            assert_eq!(parent, format!("Post {i}"));
        }
    }
    let stats = db.context().insert_stats();
    for table in ["articles", "videos", "comments"] {
        assert_eq!(stats.table(table).statements, 1, "{table}");
    }
    assert_eq!(
        (stats.table("articles").rows, stats.table("videos").rows),
        (5, 5)
    );
    Ok(())
}

/// A row that exists, a graph node, and the parent's `has_many` through the association.
#[seedbed::test(migrations = "tests/polymorphic_migrations")]
async fn a_row_a_node_and_has_many(db: TestDb) -> Result {
    let video = Video::factory().create(&db).await?;
    let comment = Comment::factory()
        .commentable_ref(&video)
        .create(&db)
        .await?;
    assert_eq!(
        (comment.commentable_type.as_str(), comment.commentable_id),
        ("video", video.id)
    );

    let mut graph = Graph::new();
    let article = graph.add(Article::factory().title("In a graph"));
    let comment = graph.add(Comment::factory().commentable(article));
    let created = graph.create(&db).await?;
    let (article, comment) = (
        created.get(&article).unwrap(),
        created.get(&comment).unwrap(),
    );
    assert_eq!(
        (comment.commentable_type.as_str(), comment.commentable_id),
        ("Article", article.id)
    );

    let article = Article::factory().with_comments(3).create(&db).await?;
    let ids: Vec<(String, i64)> = sqlx::query_as(
        "SELECT commentable_type, commentable_id FROM comments WHERE commentable_id = $1 \
         AND commentable_type = 'Article'",
    )
    .bind(article.id)
    .fetch_all(&db.pool())
    .await?;
    assert_eq!(ids.len(), 3);
    Ok(())
}

/// An optional association: unset, both columns stay NULL and no parent is created; set, both
/// are written.
#[seedbed::test(migrations = "tests/polymorphic_migrations")]
async fn an_optional_association_is_null_until_set(db: TestDb) -> Result {
    let bare = Tagging::factory().create(&db).await?;
    assert_eq!(
        (bare.subject_id, bare.subject_kind.as_deref()),
        (None, None)
    );
    let articles: i64 = sqlx::query_scalar("SELECT count(*) FROM articles")
        .fetch_one(&db.pool())
        .await?;
    assert_eq!(articles, 0);

    let tagged = Tagging::factory()
        .subject(Video::factory())
        .create(&db)
        .await?;
    assert_eq!(tagged.subject_kind.as_deref(), Some("video"));
    let url: String = sqlx::query_scalar("SELECT url FROM videos WHERE id = $1")
        .bind(tagged.subject_id)
        .fetch_one(&db.pool())
        .await?;
    assert!(url.starts_with("https://"));
    Ok(())
}

/// A `before_create_db` hook sees the key of the parent created in the same call.
#[seedbed::test(migrations = "tests/polymorphic_migrations")]
async fn a_before_hook_sees_the_parents_key(db: TestDb) -> Result {
    let comment = Comment::factory()
        .commentable(Article::factory().title("Hooked"))
        .before_create_db(|c: &mut Comment, conn: &mut PgConnection| {
            Box::pin(async move {
                let title: String = sqlx::query_scalar("SELECT title FROM articles WHERE id = $1")
                    .bind(c.commentable_id)
                    .fetch_one(&mut *conn)
                    .await?;
                c.body = format!("on {title}");
                Ok(())
            })
        })
        .create(&db)
        .await?;
    assert_eq!(comment.body, "on Hooked");
    Ok(())
}

/// In memory: the type name and the built parent's key; stubbed, distinct ids.
#[test]
fn build_and_build_stubbed() {
    let comment = Comment::factory().commentable(Video::factory()).build();
    assert_eq!(comment.commentable_type, "video");
    // The last write wins, the type with the key.
    let article = Article::factory().build_stubbed();
    let comment = Comment::factory()
        .commentable_ref(&article)
        .commentable(Video::factory())
        .build();
    assert_eq!(comment.commentable_type, "video");
    let comment = Comment::factory()
        .commentable(Video::factory())
        .commentable_ref(&article)
        .build();
    assert_eq!(
        (comment.commentable_type.as_str(), comment.commentable_id),
        ("Article", article.id)
    );
    let default = Comment::factory().build();
    assert_eq!(default.commentable_type, "Article");
    let tagging = Tagging::factory().build();
    assert_eq!((tagging.subject_id, tagging.subject_kind), (None, None));

    let stubs = Comment::factory()
        .commentable(Video::factory())
        .build_stubbed_list(100);
    let mut ids: Vec<i64> = stubs.iter().map(|c| c.commentable_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 100, "each stub has its own stubbed video");
    assert!(
        stubs
            .iter()
            .all(|c| c.commentable_type == "video" && c.id > 0)
    );
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;

    /// The same models on SQLite: a default parent, a given one and an optional one.
    #[seedbed::test(migrations = "tests/polymorphic_migrations_sqlite")]
    async fn polymorphic_on_sqlite(db: TestDb<sqlx::Sqlite>) -> Result {
        let comments = Comment::factory()
            .create_list_with(&db, 4, |i, c| {
                if i < 2 {
                    c
                } else {
                    c.commentable(Video::factory())
                }
            })
            .await?;
        let types: Vec<&str> = comments
            .iter()
            .map(|c| c.commentable_type.as_str())
            .collect();
        assert_eq!(types, ["Article", "Article", "video", "video"]);
        for comment in &comments[2..] {
            let url: String = sqlx::query_scalar("SELECT url FROM videos WHERE id = ?")
                .bind(comment.commentable_id)
                .fetch_one(&db.pool())
                .await?;
            assert!(url.starts_with("https://"));
        }
        let tagging = Tagging::factory().create(&db).await?;
        assert_eq!(tagging.subject_kind, None);
        Ok(())
    }
}
