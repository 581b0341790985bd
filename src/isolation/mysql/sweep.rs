//! What test processes that died left on a MySQL server, found by their free leases and
//! removed: slots (Rollback's, Truncate's, Template's) a dead process held, emptied; rows of
//! Namespace keys whose process is gone; and, when asked, the databases and rows kept for failed
//! tests. A slot is also emptied by its next holder, so tests never see what a dead one left;
//! [`sweep`] removes it at once, for `seedbed sweep --mysql` and for tests.

use sqlx::{Connection, MySql, MySqlConnection};

use crate::backend::mysql::{MySqlServer, admin, coord, journal};
use crate::backend::{Clean, Journal};
use crate::error::Result;

/// What [`sweep`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MySqlSwept {
    /// Slots no running test holds, emptied.
    pub slots: Vec<String>,
    /// Databases kept for failed tests, dropped (with `kept`).
    pub kept: Vec<String>,
    /// Namespace keys and tokens whose rows were removed.
    pub tokens: Vec<String>,
    /// Databases an older seedbed built (and their copies), dropped: this one never uses them.
    pub outdated: Vec<String>,
}

/// Sweeps the MySQL server of what dead test processes left (tests running now hold their
/// leases and are left alone); with `kept`, also what failed tests kept for inspection.
///
/// ```no_run
/// # async fn demo() -> Result<(), seedbed::Error> {
/// use seedbed::backend::mysql::MySqlServer;
///
/// let server = MySqlServer::resolve().await?;
/// let swept = seedbed::isolation::maintenance::sweep_mysql(&server, false).await?;
/// println!("{} slots emptied, {} keys swept", swept.slots.len(), swept.tokens.len());
/// # Ok(()) }
/// ```
pub async fn sweep(server: &MySqlServer, kept: bool) -> Result<MySqlSwept> {
    let mut swept = MySqlSwept::default();
    let mut conn = server.maintenance().await?;
    let databases = admin::list(&mut conn).await?;
    let current =
        |m: &crate::backend::Marker| m.get("version") == Some(super::image::IMAGE_VERSION);
    // The migrated databases this seedbed builds; those an older one built are never used again.
    let images: Vec<&str> = databases
        .iter()
        .filter(|(_, m)| m.get("image").is_none() && current(m))
        .map(|(name, _)| name.as_str())
        .collect();
    for (name, marker) in &databases {
        let name = name.clone();
        let image = marker.get("image");
        let outdated = match image {
            Some(image) => !images.contains(&image),
            None => !current(marker),
        };
        if outdated {
            let lease = format!("lease:{name}");
            if coord::try_take(&mut conn, &lease).await? {
                let dropped = admin::drop_database(&mut conn, &name).await;
                coord::give_back(&mut conn, &lease).await?;
                dropped?;
                swept.outdated.push(name);
            }
            continue;
        }
        match (marker.kind.as_str(), image) {
            ("slot", Some(_)) => {
                let lease = format!("lease:{name}");
                if !coord::try_take(&mut conn, &lease).await? {
                    continue;
                }
                let outcome = if marker.get("state") == Some("kept") {
                    if kept {
                        admin::drop_database(&mut conn, &name).await?;
                        swept.kept.push(name.clone());
                    }
                    Ok(())
                } else {
                    match empty(server, &name).await {
                        Ok(()) => {
                            swept.slots.push(name.clone());
                            Ok(())
                        }
                        // A slot that cannot be emptied goes: the next test makes it again.
                        Err(_) => admin::drop_database(&mut conn, &name).await,
                    }
                };
                coord::give_back(&mut conn, &lease).await?;
                outcome?;
            }
            // A shared database an older seedbed built has a journal of another form.
            ("ns", None) => {
                let mut shared = connect(server, &name).await?;
                if kept {
                    // Their tokens hold no lock: the sweep below takes their rows.
                    journal::release_kept(&mut shared).await?;
                }
                swept
                    .tokens
                    .extend(<MySql as Journal>::sweep(&mut shared).await?);
                let _ = shared.close().await;
            }
            _ => {}
        }
    }
    let _ = conn.close().await;
    Ok(swept)
}

async fn connect(server: &MySqlServer, database: &str) -> Result<MySqlConnection> {
    server.connect_to(database).await
}

/// Empties the slot `name` (its lease held by the caller).
async fn empty(server: &MySqlServer, name: &str) -> Result<()> {
    let mut conn = connect(server, name).await?;
    let plan = <MySql as Clean>::plan(&mut conn).await?;
    <MySql as Clean>::clean(&mut conn, &plan, false).await?;
    let _ = conn.close().await;
    Ok(())
}
