//! Schemas built by something other than sqlx's migrations, under every strategy: a
//! refinery-style runner and a sea-orm-style one (small, written here) through
//! `Migrations::custom`, and a plain `.sql` directory (`Migrations::plain_dir`). Databases are
//! reused by checksum; failures name the migrations and the server's message.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

use std::sync::atomic::{AtomicUsize, Ordering};

use seedbed::isolation::{Isolation, Migrations, Strategy};
use seedbed::prelude::*;
use sqlx::{Connection, PgConnection};

type Result<T = (), E = seedbed::Error> = std::result::Result<T, E>;

/// A runner in refinery's manner: versioned SQL embedded in the binary, applied in order on the
/// connection it is given, each recorded in `refinery_schema_history`.
mod refinery_style {
    use sqlx::PgConnection;

    pub(crate) struct Migration {
        pub(crate) version: i32,
        pub(crate) name: &'static str,
        pub(crate) sql: &'static str,
    }

    pub(crate) const MIGRATIONS: &[Migration] = &[
        Migration {
            version: 1,
            name: "accounts",
            sql: "CREATE TABLE accounts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
                  email text NOT NULL UNIQUE)",
        },
        Migration {
            version: 2,
            name: "notes",
            sql: "CREATE TABLE notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
                  account_id bigint NOT NULL REFERENCES accounts (id), body text NOT NULL)",
        },
    ];

    pub(crate) async fn run(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS refinery_schema_history (version int4 PRIMARY KEY, \
             name text, applied_on text, checksum text)",
        )
        .execute(&mut *conn)
        .await?;
        for m in MIGRATIONS {
            let done: Option<i32> = sqlx::query_scalar(
                "SELECT version FROM refinery_schema_history WHERE version = $1",
            )
            .bind(m.version)
            .fetch_optional(&mut *conn)
            .await?;
            if done.is_some() {
                continue;
            }
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::raw_sql(m.sql).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
                 VALUES ($1, $2, now()::text, md5($3))",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(m.sql)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }
}

/// A runner in sea-orm-migration's manner: migrations are types with an async `up`, and the
/// runner connects itself from the database URL (as `Database::connect(url)` does), recording
/// each in `seaql_migrations`.
mod sea_orm_style {
    use sqlx::{Connection, PgConnection};

    pub(crate) trait MigrationTrait: Send + Sync {
        fn name(&self) -> &'static str;
        fn up<'a>(
            &'a self,
            manager: &'a mut PgConnection,
        ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), sqlx::Error>> + Send + 'a>>;
    }

    /// A migration that creates one table (sea-orm's `Table::create()`, written as SQL).
    struct CreateTable {
        name: &'static str,
        sql: &'static str,
    }

    impl MigrationTrait for CreateTable {
        fn name(&self) -> &'static str {
            self.name
        }
        fn up<'a>(
            &'a self,
            manager: &'a mut PgConnection,
        ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), sqlx::Error>> + Send + 'a>> {
            Box::pin(async move { sqlx::raw_sql(self.sql).execute(manager).await.map(|_| ()) })
        }
    }

    pub(crate) fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreateTable {
                name: "m20240101_000001_create_accounts",
                sql: "CREATE TABLE accounts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
                      email text NOT NULL UNIQUE)",
            }),
            Box::new(CreateTable {
                name: "m20240101_000002_create_notes",
                sql: "CREATE TABLE notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
                      account_id bigint NOT NULL REFERENCES accounts (id), body text NOT NULL)",
            }),
        ]
    }

    /// `Migrator::up(&db, None)`: connects from the URL, applies what is not recorded.
    pub(crate) async fn up(url: &str) -> Result<(), sqlx::Error> {
        let mut conn = PgConnection::connect(url).await?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS seaql_migrations (version varchar PRIMARY KEY, \
             applied_at bigint NOT NULL)",
        )
        .execute(&mut conn)
        .await?;
        for m in migrations() {
            let done: Option<String> =
                sqlx::query_scalar("SELECT version FROM seaql_migrations WHERE version = $1")
                    .bind(m.name())
                    .fetch_optional(&mut conn)
                    .await?;
            if done.is_some() {
                continue;
            }
            let mut tx = conn.begin().await?;
            m.up(&mut tx).await?;
            sqlx::query(
                "INSERT INTO seaql_migrations (version, applied_at) \
                 VALUES ($1, extract(epoch FROM now())::bigint)",
            )
            .bind(m.name())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        conn.close().await
    }
}

fn refinery_migrations() -> Migrations {
    Migrations::custom("refinery", "v2", |conn: &mut PgConnection, _url: &str| {
        Box::pin(async move {
            refinery_style::run(conn).await?;
            Ok(())
        })
    })
}

fn sea_orm_migrations() -> Migrations {
    Migrations::custom("sea-orm", "v2", |_: &mut PgConnection, url: &str| {
        Box::pin(async move {
            sea_orm_style::up(url).await?;
            Ok(())
        })
    })
}

fn plain_migrations() -> seedbed::Result<Migrations> {
    Migrations::plain_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/plain_migrations"
    ))
}

/// The schema is there and usable: an account and its note, and the tool's own bookkeeping
/// table (or none, for plain files), never sqlx's.
async fn uses_the_schema(db: &TestDb, bookkeeping: Option<&str>) -> Result {
    let pool = db.pool();
    let account: i64 =
        sqlx::query_scalar("INSERT INTO accounts (email) VALUES ('a@example.com') RETURNING id")
            .fetch_one(&pool)
            .await?;
    sqlx::query("INSERT INTO notes (account_id, body) VALUES ($1, 'hello')")
        .bind(account)
        .execute(&pool)
        .await?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() ORDER BY 1",
    )
    .fetch_all(&pool)
    .await?;
    assert!(
        !tables.iter().any(|t| t == "_sqlx_migrations"),
        "{tables:?}"
    );
    if let Some(table) = bookkeeping {
        assert!(tables.iter().any(|t| t == table), "{tables:?}");
    }
    Ok(())
}

macro_rules! under_every_strategy {
    ($($name:ident: $strategy:literal, $migrations:path, $bookkeeping:expr;)*) => {
        $(
            #[seedbed::test(strategy = $strategy, migrations = $migrations)]
            async fn $name(db: TestDb) -> Result {
                uses_the_schema(&db, $bookkeeping).await
            }
        )*
    };
}

under_every_strategy! {
    refinery_under_rollback: "rollback", refinery_migrations, Some("refinery_schema_history");
    refinery_under_truncate: "truncate", refinery_migrations, Some("refinery_schema_history");
    refinery_under_template: "template", refinery_migrations, Some("refinery_schema_history");
    refinery_under_namespace: "namespace", refinery_migrations, Some("refinery_schema_history");
    sea_orm_under_rollback: "rollback", sea_orm_migrations, Some("seaql_migrations");
    sea_orm_under_truncate: "truncate", sea_orm_migrations, Some("seaql_migrations");
    sea_orm_under_template: "template", sea_orm_migrations, Some("seaql_migrations");
    sea_orm_under_namespace: "namespace", sea_orm_migrations, Some("seaql_migrations");
    plain_under_rollback: "rollback", plain_migrations, None;
    plain_under_truncate: "truncate", plain_migrations, None;
    plain_under_template: "template", plain_migrations, None;
    plain_under_namespace: "namespace", plain_migrations, None;
}

/// The plain directory: V10 (which needs V2's table) ran after V2, only dbmate's up section of
/// it ran, and no down file ran.
#[seedbed::test(migrations = plain_migrations)]
async fn plain_files_go_in_numeric_order_and_downs_are_left_out(db: TestDb) -> Result {
    let pool = db.pool();
    let account: i64 =
        sqlx::query_scalar("INSERT INTO accounts (email) VALUES ('b@example.com') RETURNING id")
            .fetch_one(&pool)
            .await?;
    let note: i64 = sqlx::query_scalar(
        "INSERT INTO notes (account_id, body) VALUES ($1, 'tagged') RETURNING id",
    )
    .bind(account)
    .fetch_one(&pool)
    .await?;
    sqlx::query("INSERT INTO note_tags (note_id, tag) VALUES ($1, 'rust')")
        .bind(note)
        .execute(&pool)
        .await?;
    let plain = plain_migrations()?;
    assert_eq!(plain.len(), 3);
    Ok(())
}

/// Namespace's schema-per-test mode builds each schema through `search_path`: a tool that
/// connects itself gets a URL whose sessions have it, so its tables land in the test's schema.
#[tokio::test]
async fn a_tool_connecting_from_the_url_builds_the_tests_schema() -> Result {
    let db: TestDb = Isolation::new(Strategy::Namespace)
        .namespace(seedbed::isolation::NamespaceOptions::schema())
        .migrations_from(|| Ok(sea_orm_migrations()))
        .acquire()
        .await?;
    let (schema, recorded): (String, i64) =
        sqlx::query_as("SELECT current_schema()::text, (SELECT count(*) FROM seaql_migrations)")
            .fetch_one(&db.pool())
            .await?;
    assert_ne!(schema, "public");
    assert_eq!(recorded, 2);
    uses_the_schema(&db, Some("seaql_migrations")).await?;
    db.finish().await
}

static BUILDS: AtomicUsize = AtomicUsize::new(0);

fn counted_migrations() -> Migrations {
    Migrations::custom("counted", "v1", |conn: &mut PgConnection, _: &str| {
        BUILDS.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            sqlx::raw_sql("CREATE TABLE counted (id int)")
                .execute(conn)
                .await?;
            Ok(())
        })
    })
}

/// A database is built once per checksum and reused: three Template tests in a row run the
/// function at most once (none when an earlier run built it); the checksum follows the name
/// and the given checksum.
#[tokio::test]
async fn databases_are_reused_by_checksum() -> Result {
    for _ in 0..3 {
        let db: TestDb = Isolation::new(Strategy::Template)
            .migrations_from(|| Ok(counted_migrations()))
            .acquire()
            .await?;
        sqlx::query("INSERT INTO counted VALUES (1)")
            .execute(&db.pool())
            .await?;
        db.finish().await?;
    }
    assert!(BUILDS.load(Ordering::SeqCst) <= 1, "{BUILDS:?}");

    let same = |name: &str, checksum: &str| {
        Migrations::custom(name, checksum, |_: &mut PgConnection, _: &str| {
            Box::pin(async { Ok(()) })
        })
        .checksum()
        .to_string()
    };
    assert_eq!(same("tool", "v1"), same("tool", "v1"));
    assert_ne!(same("tool", "v1"), same("tool", "v2"));
    assert_ne!(same("tool", "v1"), same("other", "v1"));
    Ok(())
}

/// A failing custom migration names itself and the server's message; a failing plain file
/// names the file, the line and the column.
#[tokio::test]
async fn failures_name_the_migrations() -> Result {
    let err = Isolation::new(Strategy::Rollback)
        .migrations_from(|| {
            Ok(Migrations::custom(
                "broken-tool",
                "v1",
                |conn: &mut PgConnection, _: &str| {
                    Box::pin(async move {
                        sqlx::raw_sql("CREATE TABLE t (id int REFERENCES nowhere (id))")
                            .execute(conn)
                            .await?;
                        Ok(())
                    })
                },
            ))
        })
        .acquire()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("custom migrations `broken-tool`") && err.contains("nowhere"),
        "{err}"
    );

    let err = Isolation::new(Strategy::Rollback)
        .migrations_from(|| {
            Migrations::plain_dir(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/plain_migrations_broken"
            ))
        })
        .acquire()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("V2__broken.sql, line 3, column 8") && err.contains("TABEL"),
        "{err}"
    );

    let err = Migrations::plain_dir("tests/no_such_directory")
        .unwrap_err()
        .to_string();
    assert!(err.contains("no such directory"), "{err}");
    Ok(())
}

/// A custom migration written for SQLite's connection is named when the test runs on
/// PostgreSQL; on SQLite it builds the file it is given (connection and URL).
#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use sqlx::SqliteConnection;

    fn sqlite_migrations() -> Migrations {
        Migrations::custom(
            "sqlite-tool",
            "v1",
            |conn: &mut SqliteConnection, url: &str| {
                let url = url.to_string();
                Box::pin(async move {
                    assert!(url.starts_with("sqlite://"), "{url}");
                    sqlx::raw_sql("CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT)")
                        .execute(conn)
                        .await?;
                    Ok(())
                })
            },
        )
    }

    #[seedbed::test(strategy = "template", migrations = sqlite_migrations)]
    async fn custom_migrations_on_sqlite(db: TestDb<sqlx::Sqlite>) -> Result {
        sqlx::query("INSERT INTO accounts (email) VALUES ('s@example.com')")
            .execute(&db.pool())
            .await?;
        Ok(())
    }

    #[tokio::test]
    async fn a_migration_for_another_backend_is_named() -> Result {
        let err = Isolation::new(Strategy::Rollback)
            .migrations_from(|| Ok(sqlite_migrations()))
            .acquire()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sqlite-tool") && err.contains("SqliteConnection"),
            "{err}"
        );
        Ok(())
    }
}

#[allow(
    dead_code,
    reason = "keeps the import used when the sqlite feature is off"
)]
async fn _connection_is_used(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    conn.ping().await
}
