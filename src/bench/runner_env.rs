//! What the report says about where it ran: the server's version and origin, the machine, and
//! the URL with its password hidden.

use sqlx::Connection;

use crate::backend::postgres::server::{Origin, Server};
use crate::bench::report::Environment;
use crate::error::{Error, Result};

pub(crate) async fn environment(server: &'static Server) -> Result<Environment> {
    let mut conn = server.connect().await?;
    let row: std::result::Result<(String, i64), sqlx::Error> = sqlx::query_as(
        "SELECT current_setting('server_version'), current_setting('max_connections')::int8",
    )
    .fetch_one(&mut conn)
    .await;
    let _ = conn.close().await;
    let (server_version, max_connections) = row.map_err(Error::db(
        "reading the server's version and max_connections",
    ))?;
    Ok(Environment {
        backend: "PostgreSQL".into(),
        server: redact(&match server.origin() {
            Origin::Embedded(running) => running.url(server.maintenance_database()),
            Origin::Url { .. } => server.url_for(server.maintenance_database()),
        }),
        server_version,
        embedded: matches!(server.origin(), Origin::Embedded(_)),
        max_connections,
        connection_budget: crate::isolation::budget::size(&crate::isolation::budget::postgres(
            server,
        ))
        .await?,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_bytes: memory_bytes(),
        os: os_description(),
    })
}

/// The environment of a run on SQLite: the directory of its databases and the library's version.
#[cfg(feature = "sqlite")]
pub(crate) async fn sqlite_environment(
    dir: &crate::backend::sqlite::Directory,
) -> Result<Environment> {
    let options = sqlx::sqlite::SqliteConnectOptions::new().in_memory(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .map_err(Error::db("opening an in-memory SQLite connection"))?;
    let version: std::result::Result<String, sqlx::Error> =
        sqlx::query_scalar("SELECT sqlite_version()")
            .fetch_one(&mut conn)
            .await;
    let _ = conn.close().await;
    Ok(Environment {
        backend: "SQLite".into(),
        server: dir.path().display().to_string(),
        server_version: version.map_err(Error::db("reading SQLite's version"))?,
        embedded: false,
        max_connections: 0,
        connection_budget: 0,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_bytes: memory_bytes(),
        os: os_description(),
    })
}

/// The environment of a run on MySQL or MariaDB: the server (its password hidden), its flavor,
/// version, `max_connections` and seedbed's connection budget for the URL's user.
#[cfg(feature = "mysql")]
pub(crate) async fn mysql_environment(
    server: &'static crate::backend::mysql::MySqlServer,
) -> Result<Environment> {
    let mut conn = server.maintenance().await?;
    let row: std::result::Result<(String, i64), sqlx::Error> =
        sqlx::query_as("SELECT CAST(VERSION() AS CHAR), CAST(@@max_connections AS SIGNED)")
            .fetch_one(&mut conn)
            .await;
    let budget = crate::isolation::mysql::budget::size(&mut conn).await;
    let _ = conn.close().await;
    let (server_version, max_connections) = row.map_err(Error::db(
        "reading the MySQL server's version and max_connections",
    ))?;
    Ok(Environment {
        backend: server.flavor()?.to_string(),
        server: server.display_url(""),
        server_version,
        embedded: server.origin() == "embedded",
        max_connections,
        connection_budget: budget?,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_bytes: memory_bytes(),
        os: os_description(),
    })
}

/// A URL with its password replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

fn memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn os_description() -> String {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    match (
        read("/proc/sys/kernel/ostype"),
        read("/proc/sys/kernel/osrelease"),
    ) {
        (Some(os), Some(release)) => format!("{os} {release} {}", std::env::consts::ARCH),
        _ => format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn hides_passwords() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/postgres"),
            "postgres://u:***@h:5432/postgres"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1:5432/postgres"),
            "postgres://postgres@127.0.0.1:5432/postgres"
        );
    }
}
