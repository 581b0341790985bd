//! `seedbed`: the command-line companion of the seedbed library.
//!
//! ```text
//! seedbed bench [--strategies …]     compare the isolation strategies on your schema
//! seedbed server start|status|stop   manage the embedded PostgreSQL server (--mysql: MySQL's)
//! seedbed schema [--migrations DIR]  migrate a database and show its tables in deletion order
//! seedbed list [--mysql]             the test databases seedbed made, with their state
//! seedbed sweep [--kept] [--sqlite|--mysql]  drop what dead test processes left (and kept databases)
//! ```
//!
//! `seedbed __bench-child …` (hidden) is one test process of `seedbed bench`'s
//! process-per-test runs: the bench starts its own binary that way for every test.

mod bench;
mod registry;
mod schema;
mod server;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};

/// The reference schema seedbed's own tests and benches use: the default when no
/// `--migrations` directory is given.
pub(crate) static REFERENCE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// The reference schema adapted to SQLite: the default of `seedbed bench --sqlite`.
pub(crate) static REFERENCE_SQLITE_MIGRATIONS: sqlx::migrate::Migrator =
    sqlx::migrate!("../migrations/sqlite");

/// The reference schema adapted to MySQL and MariaDB: the default of `seedbed bench --mysql`.
pub(crate) static REFERENCE_MYSQL_MIGRATIONS: sqlx::migrate::Migrator =
    sqlx::migrate!("../migrations/mysql");

#[derive(Parser)]
#[command(
    name = "seedbed",
    version,
    about = "Test databases, factories and isolation strategies for PostgreSQL"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compare the isolation strategies (and the create-and-migrate-per-test baseline of
    /// #[sqlx::test]) on a schema: a synthetic suite per strategy, in one process (serial and
    /// parallel, as cargo test) and as one process per test (as cargo nextest, beside a floor),
    /// with per-test overhead, time per test process, wall time, setup, peak connections and an
    /// isolation check; prints a table and a recommendation for each, writes bench.json and
    /// bench.svg into --out.
    Bench(bench::BenchArgs),
    /// Manage the embedded PostgreSQL server, or with --mysql the embedded MySQL (MariaDB) server
    /// (started on demand by tests, shared by all of them).
    Server {
        #[command(subcommand)]
        action: server::Action,
    },
    /// Migrate a database (once per migrations checksum) and print its tables in deletion order,
    /// children first, with the foreign-key cycles and how they can be broken.
    Schema {
        /// Server to use (default: SEEDBED_DATABASE_URL, DATABASE_URL, else the embedded server).
        #[arg(long)]
        database_url: Option<String>,
        /// Migrations directory (default: the bundled reference schema).
        #[arg(long)]
        migrations: Option<PathBuf>,
    },
    /// List the test databases seedbed made on the server: building, spare, in use or kept.
    List {
        /// Server to use (default: SEEDBED_DATABASE_URL, DATABASE_URL, else the embedded server);
        /// a mysql:// URL lists that MySQL server.
        #[arg(long)]
        database_url: Option<String>,
        /// List the MySQL server (SEEDBED_MYSQL_URL, a mysql:// DATABASE_URL, else the embedded
        /// one) instead of a PostgreSQL server.
        #[arg(long)]
        mysql: bool,
    },
    /// Drop the test databases and schemas whose process died (their lease is free), and the rows
    /// Namespace tests of dead processes left; never a running test's.
    Sweep {
        /// Server to use (default: SEEDBED_DATABASE_URL, DATABASE_URL, else the embedded server);
        /// a `sqlite:` URL sweeps the SQLite test databases beside its file.
        #[arg(long)]
        database_url: Option<String>,
        /// Also drop the databases kept for failed tests.
        #[arg(long)]
        kept: bool,
        /// Sweep the SQLite test databases (SEEDBED_SQLITE_DIR, else the target directory's
        /// seedbed-sqlite) instead of a PostgreSQL server.
        #[arg(long)]
        sqlite: bool,
        /// Sweep the MySQL server (SEEDBED_MYSQL_URL, a mysql:// DATABASE_URL, else the embedded
        /// one) instead of a PostgreSQL server; a mysql:// --database-url does the same.
        #[arg(long)]
        mysql: bool,
    },
    /// One test process of `seedbed bench`'s process-per-test runs (started by the bench
    /// itself, with arguments it makes).
    #[command(name = "__bench-child", hide = true)]
    BenchChild {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

fn main() -> ExitCode {
    // A test process's time counts from here.
    let started = Instant::now();
    let cli = Cli::parse();
    if let Command::BenchChild { args } = cli.command {
        return bench::child(args, started);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Bench(args) => match bench::run(args).await {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Command::Server { action } => server::run(action).await,
        Command::Schema {
            database_url,
            migrations,
        } => schema::run(database_url, migrations).await,
        Command::List {
            database_url,
            mysql,
        } if mysql
            || database_url
                .as_deref()
                .is_some_and(|u| u.starts_with("mysql:") || u.starts_with("mariadb:")) =>
        {
            registry::list_mysql(database_url).await
        }
        Command::List { database_url, .. } => registry::list(database_url).await,
        Command::Sweep {
            database_url,
            kept,
            mysql,
            ..
        } if mysql
            || database_url
                .as_deref()
                .is_some_and(|u| u.starts_with("mysql:") || u.starts_with("mariadb:")) =>
        {
            registry::sweep_mysql(database_url, kept).await
        }
        Command::Sweep {
            database_url,
            kept,
            sqlite,
            ..
        } if sqlite
            || database_url
                .as_deref()
                .is_some_and(|u| u.starts_with("sqlite:")) =>
        {
            registry::sweep_sqlite(database_url, kept).await
        }
        Command::Sweep {
            database_url, kept, ..
        } => registry::sweep(database_url, kept).await,
        Command::BenchChild { .. } => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The server named on the command line, or the one the environment gives.
pub(crate) async fn server_from(
    database_url: Option<String>,
) -> Result<seedbed::server::Server, seedbed::Error> {
    match database_url {
        Some(url) => seedbed::server::Server::from_url(&url).await,
        None => seedbed::server::Server::from_env().await,
    }
}
