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

/// One database seedbed made on a MySQL server, as `seedbed list --mysql` shows it.
///
/// ```
/// let entry = seedbed::isolation::maintenance::MySqlEntry {
///     name: "seedbed_tpl_0123456789abcdef_0".into(),
///     kind: "slot".into(),
///     state: "kept".into(),
///     leased: false,
///     kept_tokens: Vec::new(),
/// };
/// assert!(entry.state == "kept" && !entry.leased);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MySqlEntry {
    /// The database.
    pub name: String,
    /// What it is: `base` (the migrated database), `tpl` (a template: migrations and
    /// fixtures), `ns` (Namespace's shared database), or `slot` (a copy tests lease).
    pub kind: String,
    /// A slot's state (`ready`, or `kept` for a failed test), else the database's.
    pub state: String,
    /// Whether a test holds it now (its lease is taken).
    pub leased: bool,
    /// Namespace's shared database: the tokens of failed tests whose rows are kept.
    pub kept_tokens: Vec<String>,
}

/// The databases seedbed made on the MySQL server, with their state and whether a test holds
/// them now.
///
/// ```no_run
/// # async fn demo() -> Result<(), seedbed::Error> {
/// use seedbed::backend::mysql::MySqlServer;
///
/// let server = MySqlServer::resolve().await?;
/// for entry in seedbed::isolation::maintenance::list_mysql(&server).await? {
///     println!("{} {} {}", entry.name, entry.kind, entry.state);
/// }
/// # Ok(()) }
/// ```
pub async fn list(server: &MySqlServer) -> Result<Vec<MySqlEntry>> {
    let mut conn = server.maintenance().await?;
    let listed = async {
        let mut out = Vec::new();
        for (name, marker) in admin::list(&mut conn).await? {
            let leased = coord::is_taken(&mut conn, &format!("lease:{name}")).await?;
            let kind = marker.kind.clone();
            // A shared database being built, or one an older seedbed made, has no list to read:
            // it is listed without tokens.
            let kept_tokens = if kind == "ns" {
                match connect(server, &name).await {
                    Ok(mut shared) => {
                        let tokens = journal::kept_tokens(&mut shared).await;
                        let _ = shared.close().await;
                        tokens.unwrap_or_default()
                    }
                    Err(_) => Vec::new(),
                }
            } else {
                Vec::new()
            };
            out.push(MySqlEntry {
                state: marker.get("state").unwrap_or("ready").to_string(),
                name,
                kind,
                leased,
                kept_tokens,
            });
        }
        Ok::<_, crate::error::Error>(out)
    }
    .await;
    let _ = conn.close().await;
    listed
}
