//! Suite data: rows written once into the database every strategy starts from
//! ([`Seed`], made by `#[seedbed::seed]`).

use std::any::Any;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::context::TestContext;
use crate::error::{Error, Result};
use crate::isolation::{MigrateFuture, MigrationConnection};
use crate::util::hash::stable_hash_bytes;

/// The version of how seeds are run (their context, their tokens).
const RUN_VERSION: u32 = 1;

/// Runs a seed on the connection it was written for (downcast from `Any`).
pub type SeedFn = for<'c> fn(&'c mut (dyn Any + Send)) -> MigrateFuture<'c>;

/// Data written once per suite into the database every strategy starts from, after the
/// migrations: Template clones it, Rollback and Truncate share it (Truncate puts its rows back
/// as it does the rows migrations insert), Namespace shares it read-only.
///
/// Made by `#[seedbed::seed]` on an `async fn(&mut PgConnection) -> Result<(), E>` (or
/// `&mut SqliteConnection`), which becomes a `static` of this type to name in
/// `#[seedbed::test(seed = path)]` or [`Isolation::seed_data`](crate::Isolation::seed_data). Its identity
/// (the function's path and a hash of its code, plus an optional `version`) is part of the
/// database's checksum: a changed seed builds a new database. Factories in it draw from a
/// random stream fixed by that identity, so the rows are the same every time it runs, and their
/// sequence and unique values carry the seed's own token (`org-1-k3x9q2`), so the tests'
/// sequences, which start at 1, never collide with them.
///
/// ```no_run
/// use seedbed::prelude::*;
/// use sqlx::PgConnection;
///
/// #[seedbed::seed]
/// async fn plans(conn: &mut PgConnection) -> Result<(), seedbed::Error> {
///     sqlx::query("INSERT INTO plans (id, code, monthly_cents) VALUES (10, 'scale', 9900)")
///         .execute(&mut *conn)
///         .await?;
///     Ok(())
/// }
///
/// #[seedbed::test(seed = plans)]
/// async fn sees_the_plans(db: TestDb) -> Result<(), seedbed::Error> {
///     let n: i64 = sqlx::query_scalar("SELECT count(*) FROM plans WHERE id = 10")
///         .fetch_one(&db.pool())
///         .await?;
///     assert_eq!(n, 1);
///     Ok(())
/// }
/// ```
#[derive(Debug)]
pub struct Seed {
    name: &'static str,
    identity: &'static str,
    run: SeedRun,
}

/// What writes a seed's rows.
#[derive(Debug)]
enum SeedRun {
    /// A `#[seedbed::seed]` function.
    Fn(SeedFn),
    /// A SQL script (`seed = "…"` in `seedbed.toml`).
    Sql(&'static str),
}

impl Seed {
    /// A seed named `name` (its path), whose rows `run` writes; `identity` changes whenever
    /// they do (`#[seedbed::seed]` hashes the function's code, plus its `version`).
    pub const fn new(name: &'static str, identity: &'static str, run: SeedFn) -> Self {
        Self {
            name,
            identity,
            run: SeedRun::Fn(run),
        }
    }

    /// A seed that runs the SQL script at `path` (in one transaction), identified by the
    /// script's content: what `seed = "tests/seed.sql"` in `seedbed.toml` names for a whole
    /// suite. Read once per process and path.
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), seedbed::Error> {
    /// let seed = seedbed::isolation::Seed::sql_file("tests/seed.sql")?;
    /// assert!(seed.name().ends_with("seed.sql"));
    /// # Ok(()) }
    /// ```
    pub fn sql_file(path: impl AsRef<Path>) -> Result<&'static Seed> {
        let path = path.as_ref();
        Self::sql_file_named(path, &path.display().to_string())
    }

    /// [`sql_file`](Self::sql_file), named `name` (the path as the suite gave it, relative to
    /// the crate root: the same seed in every checkout).
    pub(crate) fn sql_file_named(path: &Path, name: &str) -> Result<&'static Seed> {
        type Known = HashMap<PathBuf, &'static Seed>;
        static READ: Mutex<Option<Known>> = Mutex::new(None);
        let path = path.to_path_buf();
        let mut known = READ.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(seed) = known.as_ref().and_then(|k| k.get(&path)) {
            return Ok(seed);
        }
        let sql = std::fs::read_to_string(&path).map_err(|e| Error::Seed {
            seed: path.display().to_string(),
            message: format!("cannot read the seed's SQL: {e}"),
        })?;
        let identity = format!("sql:{:016x}", stable_hash_bytes(sql.as_bytes()));
        let seed: &'static Seed = Box::leak(Box::new(Seed {
            name: Box::leak(name.to_string().into_boxed_str()),
            identity: Box::leak(identity.into_boxed_str()),
            run: SeedRun::Sql(Box::leak(sql.into_boxed_str())),
        }));
        known.get_or_insert_with(HashMap::new).insert(path, seed);
        Ok(seed)
    }

    /// The seed's name: the path of its function.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// What identifies the rows it writes.
    pub fn identity(&self) -> &'static str {
        self.identity
    }

    /// What the seed adds to a database's checksum: its name and identity, and the version of
    /// how seeds are run (a change there builds the seeded databases again).
    pub(crate) fn checksum_part(&self) -> String {
        format!("seed-v{RUN_VERSION}:{}:{}", self.name, self.identity)
    }

    /// Writes the seed's rows on `conn`, its factories drawing from a random stream fixed by
    /// the seed's identity. Its sequence and unique values carry a token of its own (as a
    /// test's do when it shares its database), so the tests' sequences, which start at 1 again,
    /// never meet them.
    pub(crate) async fn run<C: MigrationConnection>(&self, conn: &mut C) -> Result<()> {
        let stream = stable_hash_bytes(self.checksum_part().as_bytes());
        let ctx = Arc::new(
            TestContext::builder(self.name)
                .seed(stream)
                .shares_database(true)
                .build(),
        );
        let run = async {
            match &self.run {
                SeedRun::Fn(run) => {
                    let erased: &mut (dyn Any + Send) = &mut *conn;
                    run(erased).await
                }
                SeedRun::Sql(sql) => conn
                    .execute_script(sql, true)
                    .await
                    .map_err(Error::db("running the seed's SQL")),
            }
        };
        ctx.scope(run).await.map_err(|e| match e {
            e @ Error::Seed { .. } => e,
            other => Error::Seed {
                seed: self.name.to_string(),
                message: other.to_string(),
            },
        })
    }

    /// The error of a seed written for the connection `C`, run on another backend's.
    #[doc(hidden)]
    pub fn wrong_connection<C>(name: &'static str) -> Error {
        Error::Seed {
            seed: name.to_string(),
            message: format!(
                "it takes a {}, but the test's database is on another backend: write the seed \
                 for the connection of the test's backend",
                std::any::type_name::<C>()
            ),
        }
    }
}

/// What a seed function may return: `Result<(), E>` for any error that converts into
/// [`Error`] (`sqlx::Error`, `seedbed::Error`).
#[doc(hidden)]
pub fn seed_result<E: Into<Error>>(result: std::result::Result<(), E>) -> Result<()> {
    result.map_err(Into::into)
}
