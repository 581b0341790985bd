//! [`Error`]: the one error type of seedbed.
//!
//! Every variant says what went wrong and, where there is one, what to do about it. Library code
//! never panics: bad input, an unreachable server or a failed migration all end up here.

use std::path::PathBuf;
use std::time::Duration;

mod constraint;

pub use self::constraint::{ConstraintKind, ConstraintViolation};

/// The error type of every fallible seedbed operation.
///
/// Messages are written for the person running the tests: they name the thing that failed and say
/// what to do next.
///
/// ```
/// let err = seedbed::Error::Config("unknown strategy `rollbak`".into());
/// assert!(err.to_string().contains("rollbak"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No database server: no URL is configured and no PostgreSQL binaries were found.
    #[error(
        "no PostgreSQL server available: {reason}.\n\
         Either set DATABASE_URL (or SEEDBED_DATABASE_URL) to a server seedbed may create databases on, \
         or install PostgreSQL so seedbed can run its own:\n  \
         Debian/Ubuntu: apt-get install postgresql\n  \
         Fedora/RHEL:   dnf install postgresql-server\n  \
         macOS:         brew install postgresql@17\n\
         Searched for initdb, pg_ctl and postgres in: {searched}"
    )]
    NoServer {
        /// Why nothing could be used.
        reason: String,
        /// The places that were searched, for the message.
        searched: String,
    },

    /// The platform has no embedded server (Windows).
    #[error(
        "seedbed cannot run an embedded PostgreSQL server on {platform}: \
         set DATABASE_URL (or SEEDBED_DATABASE_URL) to a PostgreSQL server, e.g. \
         postgres://postgres:password@localhost:5432/postgres"
    )]
    UnsupportedPlatform {
        /// The platform, as `std::env::consts::OS` names it.
        platform: &'static str,
    },

    /// A server URL was configured but nothing answered in time.
    #[error(
        "cannot reach PostgreSQL at {host}:{port} (waited {waited:?}): {reason}.\n\
         Check that the server is running and that {var} is right, or unset it to use seedbed's \
         embedded server"
    )]
    Unreachable {
        /// Host (or socket directory) that was tried.
        host: String,
        /// Port that was tried.
        port: u16,
        /// How long seedbed waited.
        waited: Duration,
        /// What the connection attempt reported.
        reason: String,
        /// The environment variable the URL came from.
        var: &'static str,
    },

    /// A configured URL or setting could not be understood.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The embedded server could not be set up or started.
    #[error("embedded PostgreSQL server: {what}{}", log_tail.as_deref().map(|t| format!("\n--- server log ---\n{t}")).unwrap_or_default())]
    Embedded {
        /// What failed, and what to do.
        what: String,
        /// The last lines of the server log, when there is one.
        log_tail: Option<String>,
    },

    /// The embedded MySQL (MariaDB) server could not be found, set up or started.
    #[error("embedded MySQL server: {what}{}", log_tail.as_deref().map(|t| format!("\n--- server log ---\n{t}")).unwrap_or_default())]
    EmbeddedMySql {
        /// What failed, and what to do.
        what: String,
        /// The last lines of the server's error log, when there is one.
        log_tail: Option<String>,
    },

    /// A filesystem operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What seedbed was doing.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A migration needs an extension the server does not have.
    #[error(
        "migration {migration} needs the PostgreSQL extension `{extension}`, which this server does not have.\n\
         Install it on the server ({package}) or use a server that has it"
    )]
    MissingExtension {
        /// The migration that failed.
        migration: String,
        /// The extension's name.
        extension: String,
        /// The package that usually provides it.
        package: String,
    },

    /// A migration failed to apply.
    #[error("migration {migration} failed: {message}")]
    Migration {
        /// The migration (version and file) that failed.
        migration: String,
        /// The server's message.
        message: String,
    },

    /// A suite seed (`#[seedbed::seed]`) failed; nothing it wrote stays.
    #[error("seed {seed} failed: {message}")]
    Seed {
        /// The seed's path.
        seed: String,
        /// What went wrong.
        message: String,
    },

    /// The migrations directory could not be read.
    #[error("cannot read migrations from {}: {reason}", path.display())]
    Migrations {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// The strategy could not isolate what the test did; the test must fail.
    #[error("{strategy} could not isolate this test: {message}")]
    Isolation {
        /// The strategy in use.
        strategy: crate::strategy::Strategy,
        /// What happened, and which strategy to use instead.
        message: String,
    },

    /// Waiting for a lock, a server or a connection took longer than allowed.
    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout {
        /// What seedbed was waiting for.
        what: String,
        /// How long it waited.
        waited: Duration,
    },

    /// An error from the database driver, with what seedbed was doing at the time.
    #[error("{context}: {source}")]
    Database {
        /// What seedbed was doing.
        context: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },

    /// A connection of the test's pool failed, or did not come back, as the test started.
    #[error("connection to {database}: {message}")]
    Connection {
        /// The database the connection was to.
        database: String,
        /// What happened.
        message: String,
    },

    /// Test processes hold every connection the budget allows on this server, and kept them for
    /// longer than seedbed waits.
    #[error(
        "waited {waited:?} for {wanted} connection(s) of the connection budget: the {size} \
         connections test processes may hold on this server are in use by other test processes \
         (SEEDBED_MAX_CONNECTIONS sets the budget; run fewer tests at once, or raise the \
         server's max_connections){}",
        if *retrying { "; the pool tries again until its acquire timeout" } else { "" }
    )]
    Budget {
        /// How many connections were wanted.
        wanted: usize,
        /// The budget's size.
        size: i64,
        /// How long seedbed waited.
        waited: Duration,
        /// Whether the pool asking tries again (until its acquire timeout).
        retrying: bool,
    },

    /// A database could not be created or cloned.
    #[error("creating database {database}: {message}")]
    CreateDatabase {
        /// The database that was to be made.
        database: String,
        /// Why it was not, and what to do.
        message: String,
    },

    /// A database on the server is not one seedbed made (or not one it may use), and seedbed
    /// will not touch it.
    #[error("database {database}: {message}")]
    ForeignDatabase {
        /// The database.
        database: String,
        /// What seedbed found, and what to do.
        message: String,
    },

    /// seedbed's own bookkeeping went wrong: a bug in seedbed.
    #[error("{0}: this is a bug in seedbed; please report it")]
    Internal(String),

    // ---- Factories that write (src/factory/). ----
    /// A factory's `INSERT` broke a constraint: the table, the constraint and the values that
    /// broke it, as the server reported them.
    #[error(transparent)]
    ConstraintViolation(Box<ConstraintViolation>),

    /// A factory names a table or a column the database does not have.
    #[error(
        "{factory} names {what}, which the database does not have ({message}): check \
         #[factory(table = …, schema = …)] and #[factory(column = …)] against the schema, and \
         that the migrations ran"
    )]
    SchemaMismatch {
        /// The factory (`module::Model`).
        factory: String,
        /// What is missing: `table users`, `column emial of table users`.
        what: String,
        /// The server's message.
        message: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },

    /// A factory could not plan or decode what it creates (a model without `sqlx::FromRow`, a
    /// node of another graph, a foreign-key cycle with no nullable column to break it).
    #[error("{factory}: {message}")]
    Factory {
        /// The factory (`module::Model`).
        factory: String,
        /// What went wrong, and what to do.
        message: String,
    },

    /// `seedbed::lint!` found factories the database refuses.
    #[error(
        "seedbed::lint!: {failed} of {checked} factory variants could not be created:\n{report}\n\
         Each line names the factory, the trait and what the database refused: make the struct \
         match the migrations (#[factory(column = …)], #[factory(skip)]), or the trait's values \
         satisfy the constraint"
    )]
    Lint {
        /// Variants refused.
        failed: usize,
        /// Variants created.
        checked: usize,
        /// One line per failure.
        report: String,
    },

    // ---- The strategy benchmark (src/bench/, `seedbed bench`). ----
    /// `seedbed bench` can write rows into no table of the schema, so it has nothing to measure.
    #[error(
        "seedbed bench cannot fill any table of this schema, so it has nothing to measure:\n\
         {reasons}\n\
         Each line names the table and the column or constraint that stopped the row generator"
    )]
    BenchSchema {
        /// One line per table: the table, the column or constraint, and why.
        reasons: String,
    },

    /// The server refused rows the bench generated (the probe accepted rows of the same kind, so
    /// this is a rare collision of generated values).
    #[error(
        "seedbed bench could not write {rows} generated row(s) into {table}{}: {message}",
        constraint.as_deref().map(|c| format!(" (constraint {c})")).unwrap_or_default()
    )]
    BenchRows {
        /// The table (`schema.name`).
        table: String,
        /// How many rows the refused statement had.
        rows: usize,
        /// The constraint the server named, if any.
        constraint: Option<String>,
        /// The server's message.
        message: String,
    },

    /// A row plan file (`seedbed bench` hands one to each test process it starts) that this build
    /// of seedbed cannot read.
    #[error(
        "the row plan in {} cannot be read: {reason} (seedbed bench writes it for its test \
         processes; run the parent and the children from the same build)",
        path.display()
    )]
    BenchPlan {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    /// Wraps a driver error with what seedbed was doing when it happened.
    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Error {
        let context = context.into();
        move |source| Error::Database { context, source }
    }

    /// Wraps an I/O error with the action and the path.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}

/// Lets tests that return `Result<_, seedbed::Error>` use `?` on their own sqlx queries.
impl From<sqlx::Error> for Error {
    fn from(source: sqlx::Error) -> Self {
        Error::Database {
            context: "a query".into(),
            source,
        }
    }
}

/// `Result<T, seedbed::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
