//! Creating and repairing the embedded cluster's data directory: `initdb`, the settings seedbed
//! writes for it, and a stale `postmaster.pid` left by a server that died.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use super::super::binaries::Binaries;
use super::super::os::{self, ServerUser};
use super::{Cluster, SUPERUSER};
use crate::error::{Error, Result};

pub(super) fn initdb(cluster: &Cluster, bins: &Binaries, user: &ServerUser) -> Result<()> {
    // A half-made cluster from an interrupted initdb is useless: start over.
    if cluster.data_dir.exists() {
        fs::remove_dir_all(&cluster.data_dir).map_err(Error::io(
            "cannot remove incomplete cluster",
            &cluster.data_dir,
        ))?;
    }
    let out = user
        .command(bins.tool("initdb"))
        .current_dir(&cluster.dir)
        .arg("-D")
        .arg(&cluster.data_dir)
        .args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ])
        .env_remove("LC_ALL")
        .env_remove("LANG")
        .output()
        .map_err(Error::io("cannot run", bins.tool("initdb")))?;
    if !out.status.success() {
        let _ = fs::remove_dir_all(&cluster.data_dir);
        let output = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
        let mut what = format!("initdb failed ({}): {output}", out.status);
        if super::super::is_disk_full(&output) {
            what = format!(
                "{}; initdb said: {output}",
                super::super::disk_full_note(&cluster.dir)
            );
        }
        return Err(Error::Embedded {
            what,
            log_tail: None,
        });
    }
    let conf = cluster.data_dir.join("postgresql.conf");
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(&conf)
        .map_err(Error::io("cannot open", &conf))?;
    file.write_all(
        b"\n# seedbed: settings of the embedded test server\ninclude_if_exists = 'seedbed.conf'\n",
    )
    .map_err(Error::io("cannot write", &conf))?;
    Ok(())
}

/// The settings of a throwaway test server: durability off, local connections only, the socket
/// for its owner alone.
pub(super) fn write_seedbed_conf(
    cluster: &Cluster,
    port: u16,
    user: &ServerUser,
    settings: &[(String, String)],
) -> Result<()> {
    let path = cluster.data_dir.join("seedbed.conf");
    let socket_dir = cluster.socket_dir.to_string_lossy();
    let text = format!(
        "port = {port}\n\
         listen_addresses = '127.0.0.1'\n\
         unix_socket_directories = {socket}\n\
         unix_socket_permissions = 0700\n\
         password_encryption = 'scram-sha-256'\n\
         fsync = off\n\
         synchronous_commit = off\n\
         full_page_writes = off\n\
         wal_level = minimal\n\
         max_wal_senders = 0\n\
         max_connections = 200\n\
         max_locks_per_transaction = 256\n\
         logging_collector = off\n\
         log_min_messages = warning\n",
        socket = crate::sql::quote_literal(&socket_dir),
    );
    let mut text = text;
    for (name, value) in settings {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(Error::Config(format!(
                "`{name}` is not a server setting name"
            )));
        }
        text.push_str(&format!("{name} = {}\n", crate::sql::quote_literal(value)));
    }
    fs::write(&path, text).map_err(Error::io("cannot write", &path))?;
    user.hand_over(&path)
}

/// A `postmaster.pid` left by a server that is gone (killed, or the machine rebooted with the
/// data directory kept) makes `pg_ctl start` refuse when its pid now belongs to another process.
pub(super) fn clear_stale_pid_file(
    cluster: &Cluster,
    bins: &Binaries,
    user: &ServerUser,
) -> Result<()> {
    let pid_file = cluster.data_dir.join("postmaster.pid");
    let Some(pid) = read_postmaster_pid(&cluster.data_dir) else {
        return Ok(());
    };
    let is_postgres = os::process_command_line(pid)
        .map(|cmd| cmd.contains("postgres"))
        .unwrap_or_else(|| os::process_alive(pid));
    if os::process_alive(pid) && is_postgres {
        // A server of ours is running but does not answer (hung, or its socket was removed):
        // stop it so it can be started cleanly.
        let _ = user
            .command(bins.tool("pg_ctl"))
            .current_dir(&cluster.dir)
            .arg("-D")
            .arg(&cluster.data_dir)
            .args(["-m", "immediate", "-w", "-t", "30", "-s", "stop"])
            .output();
    }
    if pid_file.exists() && !(os::process_alive(pid) && is_postgres) {
        fs::remove_file(&pid_file).map_err(Error::io("cannot remove stale", &pid_file))?;
    }
    Ok(())
}

pub(super) fn read_postmaster_pid(data_dir: &Path) -> Option<u32> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}
