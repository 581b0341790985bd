//! The same 40 tests on MySQL (`--features mysql`, run by `BACKEND=mysql run.sh`), on the MySQL
//! reference schema: `#[seedbed::test]` (its strategy from `SEEDBED_STRATEGY`), `#[sqlx::test]`
//! (`--features sqlx-test`: a new database and every migration per test), or none (`--features
//! floor`: one connection to an already migrated database, `BEGIN`, the two inserts,
//! `ROLLBACK`).

#![cfg(feature = "mysql")]
#![allow(clippy::unwrap_used, reason = "test code")]

use sqlx::MySqlPool;

async fn two_rows(pool: &MySqlPool, test: &str) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    for n in 0..2 {
        let slug = format!("{test}-{n}-{}", std::process::id());
        sqlx::query("INSERT INTO organizations (name, slug) VALUES (?, ?)")
            .bind(&slug)
            .bind(&slug)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(feature = "floor")]
async fn floor(test: &str) -> sqlx::Result<()> {
    use sqlx::Connection;
    let url = std::env::var("FLOOR_DATABASE_URL").expect("FLOOR_DATABASE_URL names a migrated database");
    let mut conn = sqlx::MySqlConnection::connect(&url).await?;
    let mut tx = conn.begin().await?;
    for n in 0..2 {
        let slug = format!("{test}-{n}-{}", std::process::id());
        sqlx::query("INSERT INTO organizations (name, slug) VALUES (?, ?)")
            .bind(&slug)
            .bind(&slug)
            .execute(&mut *tx)
            .await?;
    }
    tx.rollback().await?;
    conn.close().await
}

macro_rules! suite {
    ($($name:ident)*) => {$(
        #[cfg(not(any(feature = "floor", feature = "sqlx-test")))]
        #[seedbed::test(migrations = "../../migrations/mysql")]
        async fn $name(pool: MySqlPool) -> sqlx::Result<()> {
            two_rows(&pool, stringify!($name)).await
        }

        #[cfg(feature = "sqlx-test")]
        #[sqlx::test(migrations = "../../migrations/mysql")]
        async fn $name(pool: MySqlPool) -> sqlx::Result<()> {
            two_rows(&pool, stringify!($name)).await
        }

        #[cfg(feature = "floor")]
        #[tokio::test]
        async fn $name() -> sqlx::Result<()> {
            floor(stringify!($name)).await
        }
    )*};
}

suite! {
    t01 t02 t03 t04 t05 t06 t07 t08 t09 t10
    t11 t12 t13 t14 t15 t16 t17 t18 t19 t20
    t21 t22 t23 t24 t25 t26 t27 t28 t29 t30
    t31 t32 t33 t34 t35 t36 t37 t38 t39 t40
}
