//! Suite data (`#[seedbed::seed]`): written once into the database every strategy starts from,
//! seen by every test, never lost to a test's writes, reproducible, part of the checksum.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

mod models;

use models::{Organization, User};
use seedbed::isolation::{Isolation, Migrations, NamespaceOptions, Strategy};
use seedbed::prelude::*;
use sqlx::PgConnection;

type Result<T = (), E = seedbed::Error> = std::result::Result<T, E>;

const SEEDED_ORGS: i64 = 3;

/// Three organizations from the factory (names from a faker, so reproducibility shows) and an
/// admin, plus a row by SQL.
#[seedbed::seed]
async fn catalog(conn: &mut PgConnection) -> Result {
    catalog_rows(conn).await
}

async fn catalog_rows(conn: &mut PgConnection) -> Result {
    Organization::factory()
        .create_list(&mut *conn, SEEDED_ORGS as usize)
        .await?;
    User::factory()
        .admin()
        .email("root@example.com")
        .create(&mut *conn)
        .await?;
    sqlx::query("UPDATE plans SET code = code || ' (seeded)' WHERE id = 1")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn seeded(db: &TestDb) -> (i64, i64, String) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM organizations), \
                (SELECT count(*) FROM users WHERE email = 'root@example.com' AND is_admin), \
                (SELECT code FROM plans WHERE id = 1)",
    )
    .fetch_one(&db.pool())
    .await
    .unwrap()
}

async fn org_names(db: &TestDb) -> Vec<String> {
    sqlx::query_scalar("SELECT name FROM organizations ORDER BY id")
        .fetch_all(&db.pool())
        .await
        .unwrap()
}

/// Every strategy starts from the seeded rows, and a test's writes (deleting seeded rows
/// included, where the strategy allows it) do not reach the next test.
macro_rules! sees_the_seed {
    ($($name:ident: $strategy:literal, $writes:expr;)*) => {
        $(
            #[seedbed::test(strategy = $strategy, seed = catalog)]
            async fn $name(db: TestDb) -> Result {
                let (orgs, admins, plan) = seeded(&db).await;
                assert_eq!(admins, 1);
                if $writes {
                    assert_eq!(orgs, SEEDED_ORGS);
                } else {
                    // Namespace's tests share the database at once: others' rows may be there.
                    assert!(orgs >= SEEDED_ORGS, "{orgs}");
                }
                assert!(plan.ends_with(" (seeded)"), "{plan}");
                Organization::factory().create(&db).await?;
                if $writes {
                    sqlx::query("DELETE FROM organizations WHERE id = (SELECT min(id) FROM organizations)")
                        .execute(&db.pool())
                        .await?;
                }
                Ok(())
            }
        )*
    };
}

sees_the_seed! {
    seeded_under_rollback: "rollback", true;
    seeded_under_rollback_again: "rollback", true;
    seeded_under_truncate: "truncate", true;
    seeded_under_truncate_again: "truncate", true;
    seeded_under_template: "template", true;
    seeded_under_template_again: "template", true;
    // Namespace shares the seeded rows read-only: its tests add rows, never change those.
    seeded_under_namespace: "namespace", false;
    seeded_under_namespace_again: "namespace", false;
}

/// The catalog again, under another name: a database of its own, which only the test below
/// takes, so it finds the database it cleaned.
#[seedbed::seed]
async fn catalog_for_truncate(conn: &mut PgConnection) -> Result {
    catalog_rows(conn).await
}

/// Truncate puts the seeded rows back after a test deleted them, as it does the rows
/// migrations insert: the second test on the same database finds them all.
#[tokio::test]
async fn truncate_restores_the_seeded_rows() -> Result {
    let first: TestDb = Isolation::new(Strategy::Truncate)
        .seed_data(&catalog_for_truncate)
        .acquire()
        .await?;
    let database = first.url();
    sqlx::query("DELETE FROM organizations")
        .execute(&first.pool())
        .await?;
    sqlx::query("UPDATE users SET email = 'changed@example.com'")
        .execute(&first.pool())
        .await?;
    first.finish().await?;

    let second: TestDb = Isolation::new(Strategy::Truncate)
        .seed_data(&catalog_for_truncate)
        .acquire()
        .await?;
    assert_eq!(second.url(), database, "the same database, cleaned");
    let (orgs, admins, _) = seeded(&second).await;
    assert_eq!((orgs, admins), (SEEDED_ORGS, 1));
    second.finish().await
}

/// The seed's factories draw from a stream fixed by its identity: databases built separately
/// (Rollback's, Truncate's, Template's) hold the same values.
#[tokio::test]
async fn the_seeded_values_are_the_same_in_every_database() -> Result {
    let mut names = Vec::new();
    for strategy in [Strategy::Rollback, Strategy::Truncate, Strategy::Template] {
        let db: TestDb = Isolation::new(strategy)
            .seed_data(&catalog)
            .acquire()
            .await?;
        names.push(org_names(&db).await);
        db.finish().await?;
    }
    assert_eq!(names[0].len(), SEEDED_ORGS as usize);
    assert_eq!(names[0], names[1]);
    assert_eq!(names[0], names[2]);
    Ok(())
}

#[seedbed::seed]
async fn one_account(conn: &mut PgConnection) -> Result {
    sqlx::query("INSERT INTO accounts (email) VALUES ('seeded@example.com')")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Namespace's schema mode writes the seed into each schema it builds.
#[tokio::test]
async fn every_namespace_schema_is_seeded() -> Result {
    for _ in 0..2 {
        let db: TestDb = Isolation::new(Strategy::Namespace)
            .namespace(NamespaceOptions::schema())
            .migrations("tests/single_schema_migrations")
            .seed_data(&one_account)
            .acquire()
            .await?;
        let emails: Vec<String> = sqlx::query_scalar("SELECT email FROM accounts")
            .fetch_all(&db.pool())
            .await?;
        assert_eq!(emails, ["seeded@example.com"]);
        sqlx::query("INSERT INTO accounts (email) VALUES ('mine@example.com')")
            .execute(&db.pool())
            .await?;
        db.finish().await?;
    }
    Ok(())
}

/// A suite names its seed in `seedbed.toml`: a SQL file, run once after the migrations for every
/// test of the crate that names no seed of its own.
#[tokio::test]
async fn the_suite_seed_is_a_sql_file_named_in_seedbed_toml() -> Result {
    let root = std::env::temp_dir().join(format!("seedbed-suite-seed-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("seedbed.toml"), "seed = \"seed.sql\"\n").unwrap();
    std::fs::write(
        root.join("seed.sql"),
        "INSERT INTO organizations (name, slug) VALUES ('From the suite', 'suite-seed');\n",
    )
    .unwrap();
    let migrations = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    let db: TestDb = Isolation::new(Strategy::Template)
        .crate_root(&root)
        .migrations(migrations)
        .acquire()
        .await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations WHERE slug = 'suite-seed'")
        .fetch_one(&db.pool())
        .await?;
    assert_eq!(n, 1);
    db.finish().await?;

    // A test's own seed takes its place.
    let db: TestDb = Isolation::new(Strategy::Template)
        .crate_root(&root)
        .migrations(migrations)
        .seed_data(&catalog)
        .acquire()
        .await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations WHERE slug = 'suite-seed'")
        .fetch_one(&db.pool())
        .await?;
    assert_eq!(n, 0);
    db.finish().await?;

    std::fs::write(root.join("seedbed.toml"), "seed = \"missing.sql\"\n").unwrap();
    let other_root = root.join("other");
    std::fs::create_dir_all(&other_root).unwrap();
    std::fs::write(other_root.join("seedbed.toml"), "seed = \"missing.sql\"\n").unwrap();
    let err = Isolation::new(Strategy::Template)
        .crate_root(&other_root)
        .migrations(migrations)
        .acquire()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing.sql") && err.contains("cannot read"),
        "{err}"
    );
    std::fs::remove_dir_all(&root).unwrap();
    Ok(())
}

#[seedbed::seed(version = 2)]
async fn catalog_v2(conn: &mut PgConnection) -> Result {
    User::factory().create(&mut *conn).await?;
    Ok(())
}

#[seedbed::seed(version = 3)]
async fn catalog_v3(conn: &mut PgConnection) -> Result {
    User::factory().create(&mut *conn).await?;
    Ok(())
}

/// A seed is part of the database's identity: its code and version change the checksum.
#[tokio::test]
async fn the_seed_is_part_of_the_checksum() -> Result {
    let plain = Migrations::from_dir("migrations").await?;
    let checksums: Vec<String> = [&catalog, &catalog_v2, &catalog_v3]
        .into_iter()
        .map(|seed| plain.clone().with_seed(seed).checksum().to_string())
        .collect();
    assert_ne!(checksums[0], plain.checksum());
    assert_ne!(checksums[0], checksums[1]);
    assert_ne!(checksums[1], checksums[2], "only the version differs");
    assert_eq!(
        plain.clone().with_seed(&catalog).checksum(),
        checksums[0],
        "the same seed, the same checksum"
    );
    assert!(
        catalog.name().ends_with("seed::catalog"),
        "{}",
        catalog.name()
    );
    Ok(())
}

#[seedbed::seed]
async fn broken(conn: &mut PgConnection) -> Result {
    sqlx::query("INSERT INTO organizations (name) VALUES ('no slug')")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A failing seed names itself and the server's message, and fails the test at its start.
#[tokio::test]
async fn a_failing_seed_is_named() -> Result {
    let err = Isolation::new(Strategy::Template)
        .seed_data(&broken)
        .acquire()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("seed") && err.contains("seed::broken") && err.contains("slug"),
        "{err}"
    );
    Ok(())
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use sqlx::SqliteConnection;

    #[seedbed::seed]
    async fn sqlite_catalog(conn: &mut SqliteConnection) -> Result {
        sqlx::query("INSERT INTO organizations (name, slug) VALUES ('Seeded', 'seeded')")
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    #[seedbed::test(strategy = "template", migrations = "migrations/sqlite", seed = sqlite_catalog)]
    async fn seeded_on_sqlite_template(db: TestDb<sqlx::Sqlite>) -> Result {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations WHERE slug = 'seeded'")
            .fetch_one(&db.pool())
            .await?;
        assert_eq!(n, 1);
        sqlx::query("DELETE FROM organizations")
            .execute(&db.pool())
            .await?;
        Ok(())
    }

    #[seedbed::test(strategy = "rollback", migrations = "migrations/sqlite", seed = sqlite_catalog)]
    async fn seeded_on_sqlite_rollback(db: TestDb<sqlx::Sqlite>) -> Result {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations WHERE slug = 'seeded'")
            .fetch_one(&db.pool())
            .await?;
        assert_eq!(n, 1);
        Ok(())
    }

    /// A seed written for PostgreSQL's connection, on a SQLite test: named.
    #[tokio::test]
    async fn a_seed_for_another_backend_is_named() -> Result {
        let err = Isolation::new(Strategy::Rollback)
            .migrations("migrations/sqlite")
            .seed_data(&catalog)
            .acquire_on::<sqlx::Sqlite>()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("seed::catalog") && err.contains("PgConnection"),
            "{err}"
        );
        Ok(())
    }
}
