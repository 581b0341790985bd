//! Who may connect to the embedded server: the OS account that owns the cluster, through the
//! socket (which no other account can reach), and whoever holds the cluster's secret, over TCP
//! (`scram-sha-256`). Nobody else.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use sqlx::{Connection, PgConnection};

use super::super::os::ServerUser;
use super::{Cluster, EmbeddedServer, SUPERUSER};
use crate::error::{Error, Result};

/// The first line of the `pg_hba.conf` seedbed writes.
const HBA_HEADER: &str = "# seedbed: written at every start of the embedded server";

/// The cluster's TCP password, if it has been secured (`secret` exists and holds one).
pub(super) fn read_secret(cluster: &Cluster) -> Option<String> {
    let text = fs::read_to_string(&cluster.secret_file).ok()?;
    let secret = text.trim();
    let valid = secret.len() >= 32 && secret.bytes().all(|b| b.is_ascii_hexdigit());
    valid.then(|| secret.to_string())
}

/// A new random password: 256 bits from the OS's generator, in hex (nothing to escape in a URL
/// or a SQL literal).
fn new_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Makes `dir` enterable by its owner alone (mode 0700).
pub(super) fn owner_only(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(Error::io("cannot set permissions on", dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes `pg_hba.conf`: the socket lets in whoever can reach it, which is the cluster's owner
/// alone (its directory and the socket itself are mode 0700; connecting to a socket takes write
/// permission on it), as any role, with no password exchange; TCP asks for the password; nothing
/// else is accepted.
pub(super) fn write_hba(cluster: &Cluster, user: &ServerUser) -> Result<()> {
    let hba = format!(
        "{HBA_HEADER}; edits are overwritten.\n\
         # The Unix socket: mode 0700 in a directory of mode 0700, reachable by the owner alone.\n\
         local all all trust\n\
         # TCP on 127.0.0.1: the password kept in {secret} (mode 0600).\n\
         host all all 127.0.0.1/32 scram-sha-256\n",
        secret = cluster.secret_file.display(),
    );
    write_private(&cluster.data_dir.join("pg_hba.conf"), &hba, user)
}

/// Sets the superuser's password to the cluster's secret (made now if the cluster has none) and
/// records it, so TCP connections need it. `reload` is for a server found running with an older
/// configuration that trusted every local account: its `pg_hba.conf` is rewritten and reloaded
/// once the password is set (this connection came in under the old rules).
pub(super) async fn secure(
    cluster: &Cluster,
    user: &ServerUser,
    server: EmbeddedServer,
    reload: bool,
) -> Result<EmbeddedServer> {
    let (password, is_new) = match read_secret(cluster) {
        Some(secret) => (secret, false),
        None => (new_secret(), true),
    };
    let server = EmbeddedServer { password, ..server };
    let mut conn = PgConnection::connect_with(&server.connect_options("postgres"))
        .await
        .map_err(|e| Error::Embedded {
            what: format!("cannot connect to the embedded server to set its password: {e}"),
            log_tail: cluster.log_tail(),
        })?;
    // The server hashes it (SCRAM, `password_encryption`); the statement is not logged.
    let set = format!(
        "SET log_statement = 'none'; SET password_encryption = 'scram-sha-256'; \
         ALTER ROLE {} PASSWORD {}",
        crate::sql::quote_ident(SUPERUSER),
        crate::sql::quote_literal(&server.password),
    );
    let mut result = sqlx::raw_sql(sqlx::AssertSqlSafe(set))
        .execute(&mut conn)
        .await
        .map(|_| ());
    if reload && result.is_ok() {
        write_hba(cluster, user)?;
        result = sqlx::query("SELECT pg_reload_conf()")
            .execute(&mut conn)
            .await
            .map(|_| ());
    }
    let _ = conn.close().await;
    result.map_err(|e| Error::Embedded {
        what: format!("cannot set the embedded server's password: {e}"),
        log_tail: cluster.log_tail(),
    })?;
    if is_new {
        write_secret(cluster, &server.password)?;
    }
    Ok(server)
}

/// Writes `secret` (mode 0600, owned by the account seedbed runs as), replacing it atomically.
fn write_secret(cluster: &Cluster, secret: &str) -> Result<()> {
    let tmp = cluster
        .dir
        .join(format!("secret.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&tmp)
        .map_err(Error::io("cannot create", &tmp))?;
    file.write_all(format!("{secret}\n").as_bytes())
        .map_err(Error::io("cannot write", &tmp))?;
    drop(file);
    fs::rename(&tmp, &cluster.secret_file).map_err(Error::io("cannot write", &cluster.secret_file))
}

/// Writes a configuration file of the server's, readable by the server's account alone.
fn write_private(path: &Path, text: &str, user: &ServerUser) -> Result<()> {
    fs::write(path, text).map_err(Error::io("cannot write", path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(Error::io("cannot set permissions on", path))?;
    }
    user.hand_over(path)
}
