//! Several databases in one test: the test's own and others named beside it
//! ([`Isolation::also`](super::Isolation::also), `databases(…)` in `#[seedbed::test]`), each
//! isolated by the test's strategy, on the same backend or another.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use super::Isolation;
use super::isolated::Isolated;
use super::testdb::{Outcome, TestDb};
use crate::backend::Backend;
use crate::error::{Error, Result};

/// A test database of any backend, as another database of a test holds it.
#[doc(hidden)]
pub trait AnyTestDb: Send + Sync + fmt::Debug {
    /// The `TestDb<X>`, to downcast.
    fn as_any(&self) -> &dyn Any;
    /// Ends it.
    fn finish(&self, outcome: Outcome) -> Pin<Box<dyn Future<Output = Result<()>> + Send + '_>>;
    /// Its strategy, database and URL, for a failed test's report.
    fn describe(&self) -> String;
}

impl<X: Backend> AnyTestDb for TestDb<X> {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn finish(&self, outcome: Outcome) -> Pin<Box<dyn Future<Output = Result<()>> + Send + '_>> {
        Box::pin(self.finish_inner(outcome))
    }

    fn describe(&self) -> String {
        match self.url() {
            Some(url) => format!("{} ({url})", self.database()),
            None => self.database().to_string(),
        }
    }
}

/// A test database of some backend, being acquired.
#[doc(hidden)]
pub type AcquiringAny = Pin<Box<dyn Future<Output = Result<Box<dyn AnyTestDb>>> + Send>>;

/// Acquires another database of a test on its backend.
#[doc(hidden)]
pub type AcquireAny = fn(Isolation) -> AcquiringAny;

/// [`AcquireAny`] on the backend `X`.
#[doc(hidden)]
pub fn acquire_any<X: Isolated>(iso: Isolation) -> AcquiringAny {
    Box::pin(async move {
        let db: TestDb<X> = iso.acquire_on::<X>().await?;
        Ok(Box::new(db) as Box<dyn AnyTestDb>)
    })
}

/// Another database of a test, before it is acquired.
#[derive(Clone)]
pub(super) struct AlsoDb {
    pub(super) name: String,
    pub(super) iso: Box<Isolation>,
    /// `None`: the backend of the test's own database.
    pub(super) acquire: Option<AcquireAny>,
}

impl fmt::Debug for AlsoDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlsoDb")
            .field("name", &self.name)
            .field("iso", &self.iso)
            .finish_non_exhaustive()
    }
}

/// The other databases of a test, acquired.
#[derive(Debug)]
pub(super) struct Others {
    /// The name of the test's own database in `databases(…)`, if it has one.
    pub(super) main: Option<String>,
    pub(super) list: Vec<(String, Box<dyn AnyTestDb>)>,
}

/// A test with no other database.
pub(super) static NO_OTHERS: Others = Others {
    main: None,
    list: Vec::new(),
};

impl Others {
    /// Acquires `also` in order; on an error, those acquired are dropped (cleaned as any dropped
    /// test database is) and the error names the database.
    pub(super) async fn acquire<DB: Isolated>(
        main: Option<String>,
        also: Vec<AlsoDb>,
    ) -> Result<Self> {
        let mut list = Vec::with_capacity(also.len());
        for other in also {
            let acquire = other.acquire.unwrap_or(acquire_any::<DB>);
            // A configuration error names the database; the others (a failed migration, a
            // missing extension) keep their kind and name their file.
            let db = acquire(*other.iso).await.map_err(|e| match e {
                Error::Config(message) => Error::Config(format!(
                    "cannot prepare the test's database `{}`: {message}",
                    other.name
                )),
                other => other,
            })?;
            list.push((other.name, db));
        }
        Ok(Self { main, list })
    }

    /// Ends every one; the first error.
    pub(super) async fn finish(&self, outcome: Outcome) -> Result<()> {
        let mut first = Ok(());
        for (name, db) in &self.list {
            if let Err(e) = db.finish(outcome).await
                && first.is_ok()
            {
                first = Err(Error::Config(format!("the test's database `{name}`: {e}")));
            }
        }
        first
    }

    /// The database `name`, as a `TestDb<X>`.
    pub(super) fn get<X: Backend>(&self, name: &str) -> Result<&TestDb<X>> {
        let Some((_, db)) = self.list.iter().find(|(n, _)| n == name) else {
            let mut known: Vec<&str> = self.list.iter().map(|(n, _)| n.as_str()).collect();
            if let Some(main) = &self.main {
                known.insert(0, main);
            }
            return Err(Error::Config(format!(
                "the test has no database `{name}`: it has {}",
                if known.is_empty() {
                    "only its own (name others with databases(…) in #[seedbed::test], or \
                     Isolation::also)"
                        .to_string()
                } else {
                    known
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )));
        };
        db.as_any().downcast_ref::<TestDb<X>>().ok_or_else(|| {
            Error::Config(format!(
                "the test's database `{name}` is not on {}: ask for it with \
                 named_on::<its backend>(\"{name}\")",
                std::any::type_name::<X>()
            ))
        })
    }

    /// Lines for a failed test's report.
    pub(super) fn describe(&self) -> String {
        self.list
            .iter()
            .map(|(name, db)| format!("also:     {name}: {}\n", db.describe()))
            .collect()
    }
}
