//! What the registry says about seedbed's databases, and sweeping the ones whose owner is gone:
//! [`list`] for `seedbed list`, [`sweep`] for `seedbed sweep` and the first process of a run.

use sqlx::PgConnection;

use super::{coord, drop_database, ensure, lease_key, release, with_registry};
use crate::error::{Error, Result};

/// One row of the registry, with whether its lease is held right now.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The database.
    pub name: String,
    /// `clone` or `spare` (a clone made ahead of demand).
    pub kind: String,
    /// `building`, `spare`, `in_use` or `kept`.
    pub state: String,
    /// The template it was cloned from.
    pub template: Option<String>,
    /// The run that made or holds it.
    pub run_id: String,
    /// The host.
    pub host: String,
    /// The process.
    pub pid: i32,
    /// The test that holds it, or held it when it failed.
    pub test: Option<String>,
    /// Whether some connection holds its lease now.
    pub leased: bool,
    /// When it was made.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Every registered database.
pub async fn list(conn: &mut PgConnection) -> Result<Vec<Entry>> {
    ensure(conn).await?;
    let sql = format!(
        "SELECT d.name, d.kind, d.state, d.template, d.run_id, d.host, d.pid, d.test, \
                EXISTS (SELECT 1 FROM pg_locks l WHERE l.granted \
                        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                        AND {leased}) AS leased, \
                d.created_at \
         FROM seedbed.databases d ORDER BY d.created_at",
        leased = coord::pg_locks_match("l", &lease_key("d.name"))
    );
    type Row = (
        String,
        String,
        String,
        Option<String>,
        String,
        String,
        i32,
        Option<String>,
        bool,
        chrono::DateTime<chrono::Utc>,
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(conn)
        .await
        .map_err(Error::db("listing seedbed's test databases"))?;
    Ok(rows
        .into_iter()
        .map(
            |(name, kind, state, template, run_id, host, pid, test, leased, created_at)| Entry {
                name,
                kind,
                state,
                template,
                run_id,
                host,
                pid,
                test,
                leased,
                created_at,
            },
        )
        .collect())
}

/// Whether any database a sweep would drop exists: building or in use with its lease free (one
/// query; the sweep itself takes each lease before it drops).
pub(crate) async fn anything_to_sweep(conn: &mut PgConnection) -> Result<bool> {
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM seedbed.databases d \
         WHERE d.state IN ('building', 'in_use') \
           AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.granted \
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 AND {leased}))",
        leased = coord::pg_locks_match("l", &lease_key("d.name"))
    );
    with_registry(conn, move |conn| {
        let sql = sql.clone();
        Box::pin(async move {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(conn)
                .await
                .map_err(Error::db("looking for abandoned test databases"))
        })
    })
    .await
}

/// What a sweep removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Databases of dead owners (building or in use, lease free).
    pub abandoned: Vec<String>,
    /// Kept databases of failed tests (only with `kept`).
    pub kept: Vec<String>,
}

/// Drops the databases whose owner is gone: rows `building` or `in_use` whose lease nobody holds.
/// Never touches a live test's database (its lease is held), nor spares; with `kept`, also drops
/// the databases kept for failed tests.
pub async fn sweep(conn: &mut PgConnection, kept: bool) -> Result<Swept> {
    sweep_except(conn, kept, |_| false).await
}

/// [`sweep`], leaving the databases `ours` names: those whose lease `conn`'s own session holds
/// (a session advisory lock is re-entrant, so taking it again would look like the owner is gone).
pub(crate) async fn sweep_except(
    conn: &mut PgConnection,
    kept: bool,
    ours: impl Fn(&str) -> bool,
) -> Result<Swept> {
    let rows: Vec<(String, String)> = with_registry(conn, move |conn| {
        Box::pin(async move {
            sqlx::query_as(
                "SELECT name, state FROM seedbed.databases \
                 WHERE state IN ('building', 'in_use') OR ($1 AND state = 'kept') \
                 ORDER BY created_at",
            )
            .bind(kept)
            .fetch_all(conn)
            .await
            .map_err(Error::db("looking for abandoned test databases"))
        })
    })
    .await?;
    let try_lease = format!("SELECT pg_try_advisory_lock({})", lease_key("$1::text"));
    let mut swept = Swept::default();
    for (name, state) in rows {
        if ours(&name) {
            continue;
        }
        // Holding the lease ourselves proves its owner is gone (or, for kept ones, that no one
        // is looking at it through seedbed).
        let free: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(try_lease.clone()))
            .bind(&name)
            .fetch_one(&mut *conn)
            .await
            .map_err(Error::db(format!("checking the lease of {name}")))?;
        if !free {
            continue;
        }
        // The row may have changed between the list and the lease (claimed, then released).
        let still: Option<String> =
            sqlx::query_scalar("SELECT state FROM seedbed.databases WHERE name = $1")
                .bind(&name)
                .fetch_optional(&mut *conn)
                .await
                .map_err(Error::db(format!("checking {name}")))?;
        if still.as_deref() != Some(state.as_str()) {
            release(conn, &name).await?;
            continue;
        }
        // The lease goes back whether the drop worked or not: the connection may live on.
        let dropped = drop_database(conn, &name).await;
        release(conn, &name).await?;
        dropped?;
        if state == "kept" {
            swept.kept.push(name);
        } else {
            swept.abandoned.push(name);
        }
    }
    Ok(swept)
}
