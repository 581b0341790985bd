//! The embedded MySQL server: not available yet, so a MySQL test needs a server named by URL.

use super::server::MySqlServer;
use crate::error::{Error, Result};

/// The embedded server, when it can be had.
pub(crate) fn server() -> Result<MySqlServer> {
    Err(Error::Config(
        "no MySQL server: set SEEDBED_MYSQL_URL (or DATABASE_URL) to a mysql:// URL of a MySQL 8 \
         or MariaDB 10.6+ server seedbed may create databases on, e.g. \
         mysql://root@127.0.0.1:3306"
            .into(),
    ))
}
