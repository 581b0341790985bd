//! `seedbed list` and `seedbed sweep`: the test databases seedbed made on a server.

use seedbed::isolation::maintenance;
use sqlx::Connection;

pub(crate) async fn list(database_url: Option<String>) -> Result<(), seedbed::Error> {
    let server = crate::server_from(database_url).await?;
    let mut conn = server.connect().await?;
    let entries = maintenance::list(&mut conn).await?;
    let _ = conn.close().await;
    let rows = maintenance::list_kept_rows(&server).await?;
    if entries.is_empty() && rows.is_empty() {
        println!("no test databases");
        return Ok(());
    }
    if !entries.is_empty() {
        println!(
            "{:<40} {:<9} {:<6} {:<8} {:<12} {:>7}  test",
            "database", "state", "leased", "run", "host", "pid"
        );
    }
    for e in &entries {
        println!(
            "{:<40} {:<9} {:<6} {:<8} {:<12} {:>7}  {}",
            e.name,
            e.state,
            if e.leased { "yes" } else { "no" },
            e.run_id,
            e.host,
            e.pid,
            e.test.as_deref().unwrap_or("")
        );
    }
    if !rows.is_empty() {
        println!(
            "\n{} Namespace test(s) failed and left their rows (`seedbed sweep --kept` removes them):",
            rows.len()
        );
        for r in &rows {
            println!(
                "  {}: {} row(s) in {}, token {} (SELECT relid::regclass, pk FROM seedbed.journal \
                 WHERE token = '{}')",
                r.test, r.rows, r.database, r.token, r.token
            );
        }
    }
    let kept: Vec<&maintenance::Entry> = entries.iter().filter(|e| e.state == "kept").collect();
    if !kept.is_empty() {
        println!(
            "\n{} kept for failed tests (connect with the URLs below; `seedbed sweep --kept` removes them):",
            kept.len()
        );
        for e in kept {
            println!("  {}", server.url_for(&e.name));
        }
    }
    Ok(())
}

pub(crate) async fn sweep(database_url: Option<String>, kept: bool) -> Result<(), seedbed::Error> {
    let server = crate::server_from(database_url).await?;
    let mut conn = server.connect().await?;
    let swept = maintenance::sweep(&mut conn, kept).await?;
    let _ = conn.close().await;
    println!(
        "dropped {} abandoned test database(s){}",
        swept.abandoned.len(),
        if kept {
            format!(" and {} kept one(s)", swept.kept.len())
        } else {
            String::new()
        }
    );
    for name in swept.abandoned.iter().chain(&swept.kept) {
        println!("  {name}");
    }
    // Namespace: the rows of tests whose process died, by token, and their schemas.
    for (database, tokens) in maintenance::sweep_namespace_rows(&server, kept).await? {
        if !tokens.is_empty() {
            println!(
                "removed the rows of {} {} from {database}: {}",
                tokens.len(),
                if kept {
                    "dead or failed test(s)"
                } else {
                    "dead test(s)"
                },
                tokens.join(", ")
            );
        }
    }
    for (database, dropped) in maintenance::sweep_schema_pools(&server).await? {
        if !dropped.is_empty() {
            println!(
                "dropped {} abandoned test schema(s) in {database}: {}",
                dropped.len(),
                dropped.join(", ")
            );
        }
    }
    Ok(())
}

/// `seedbed sweep --sqlite`: the SQLite test databases of dead test processes (and, with `kept`,
/// the copies kept for failed tests).
pub(crate) async fn sweep_sqlite(
    database_url: Option<String>,
    kept: bool,
) -> Result<(), seedbed::Error> {
    let dir = seedbed::backend::sqlite::Directory::resolve(database_url.as_deref())?;
    let swept = maintenance::sweep_sqlite(&dir, kept).await?;
    println!(
        "in {}: removed {} test database copy(ies){}, emptied {} slot(s), removed the rows of {} \
         dead Namespace key(s)",
        dir.path().display(),
        swept.clones.len(),
        if kept { " (kept ones included)" } else { "" },
        swept.slots.len(),
        swept.tokens.len()
    );
    for name in swept.clones.iter().chain(&swept.slots) {
        println!("  {name}");
    }
    Ok(())
}

/// `seedbed sweep --mysql`: the MySQL server's slots no running test holds, emptied; the rows of
/// dead Namespace keys removed; with `--kept`, what failed tests kept.
pub(crate) async fn sweep_mysql(
    database_url: Option<String>,
    kept: bool,
) -> Result<(), seedbed::Error> {
    use seedbed::backend::mysql::MySqlServer;
    let server = match database_url {
        Some(url) => MySqlServer::from_url(&url).await?,
        None => MySqlServer::resolve().await?,
    };
    let swept = maintenance::sweep_mysql(&server, kept).await?;
    println!(
        "on {}: emptied {} slot(s), dropped {} kept database(s) and {} an older seedbed built, \
         removed the rows of {} dead Namespace key(s) or kept token(s)",
        server.display_url("").trim_end_matches('/'),
        swept.slots.len(),
        swept.kept.len(),
        swept.outdated.len(),
        swept.tokens.len()
    );
    for name in swept.slots.iter().chain(&swept.kept).chain(&swept.outdated) {
        println!("  {name}");
    }
    Ok(())
}

/// `seedbed list --mysql`: the databases seedbed made on the MySQL server, with their state,
/// whether a test holds them, and what failed tests kept.
pub(crate) async fn list_mysql(database_url: Option<String>) -> Result<(), seedbed::Error> {
    use seedbed::backend::mysql::MySqlServer;
    let server = match database_url {
        Some(url) => MySqlServer::from_url(&url).await?,
        None => MySqlServer::resolve().await?,
    };
    let entries = maintenance::list_mysql(&server).await?;
    if entries.is_empty() {
        println!("no test databases");
        return Ok(());
    }
    println!(
        "{:<44} {:<5} {:<6} {:<6}",
        "database", "kind", "state", "leased"
    );
    for e in &entries {
        println!(
            "{:<44} {:<5} {:<6} {:<6}",
            e.name,
            e.kind,
            e.state,
            if e.leased { "yes" } else { "no" }
        );
    }
    let kept: Vec<&maintenance::MySqlEntry> =
        entries.iter().filter(|e| e.state == "kept").collect();
    if !kept.is_empty() {
        println!(
            "\n{} kept for failed tests (connect with the URLs below; `seedbed sweep --mysql --kept` removes them):",
            kept.len()
        );
        for e in kept {
            println!("  {}", server.display_url(&e.name));
        }
    }
    for e in entries.iter().filter(|e| !e.kept_tokens.is_empty()) {
        println!(
            "\n{} Namespace test(s) failed and left their rows in {} (`seedbed sweep --mysql --kept` removes them): tokens {}",
            e.kept_tokens.len(),
            e.name,
            e.kept_tokens.join(", ")
        );
    }
    Ok(())
}
