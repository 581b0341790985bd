//! Each strategy's own settings, as types: a strategy reads its own and no other's, and a setting
//! that means nothing in a mode (keeping a schema-mode test's rows) has no setter there.
//!
//! ```no_run
//! # async fn demo() -> Result<(), seedbed::Error> {
//! use seedbed::isolation::{NamespaceOptions, TemplateOptions, TruncateOptions};
//! use seedbed::prelude::*;
//!
//! // Whichever strategy runs (SEEDBED_STRATEGY may choose), it gets its own settings.
//! let db: TestDb = Isolation::configured()
//!     .truncate(TruncateOptions::new().reset_sequences(true))
//!     .template(TemplateOptions::new().spares(2))
//!     .namespace(NamespaceOptions::data().keep_rows(false))
//!     .acquire()
//!     .await?;
//! db.finish().await?;
//!
//! // Schema mode has no `keep_rows`: the schema is dropped after the test.
//! let db: TestDb = Isolation::new(Strategy::Namespace)
//!     .namespace(NamespaceOptions::schema())
//!     .acquire()
//!     .await?;
//! db.finish().await?;
//! # Ok(()) }
//! ```

/// Truncate's settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TruncateOptions {
    pub(crate) reset_sequences: bool,
}

impl TruncateOptions {
    /// The defaults: sequences keep counting across tests.
    pub fn new() -> Self {
        Self::default()
    }

    /// Restart the identities and sequences of the tables the test wrote.
    pub fn reset_sequences(mut self, reset: bool) -> Self {
        self.reset_sequences = reset;
        self
    }
}

/// Template's settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TemplateOptions {
    pub(crate) spares: Option<usize>,
}

impl TemplateOptions {
    /// The defaults: the warm pool's size from `SEEDBED_TEMPLATE_SPARES`, else the number of CPUs
    /// between 2 and 8.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many spare clones to keep ready (0 clones each test's database as it starts).
    pub fn spares(mut self, spares: usize) -> Self {
        self.spares = Some(spares);
        self
    }
}

/// How Namespace keeps tests apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NamespaceMode {
    /// One shared database: each test's rows carry its token and are removed after it.
    #[default]
    Data,
    /// A schema per test, with the migrations applied in it, reached through `search_path`
    /// (`namespace = "schema"`), for applications that never name their schema.
    Schema,
}

/// Namespace's settings: [`data`](Self::data) mode (and whether its rows stay) or
/// [`schema`](Self::schema) mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NamespaceOptions {
    pub(crate) mode: NamespaceMode,
    pub(crate) keep_rows: bool,
}

impl NamespaceOptions {
    /// Data mode: one shared database, the test's rows removed by token after it.
    pub fn data() -> DataMode {
        DataMode { keep_rows: false }
    }

    /// Schema mode: a schema per test, dropped after it.
    pub fn schema() -> SchemaMode {
        SchemaMode
    }

    /// The mode.
    pub fn mode(&self) -> NamespaceMode {
        self.mode
    }
}

/// Namespace's data mode (see [`NamespaceOptions::data`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataMode {
    keep_rows: bool,
}

impl DataMode {
    /// Keep the rows the test wrote (`cleanup = "none"`), letting data accumulate in the shared
    /// database; they are no longer tracked, so `seedbed sweep` leaves them too.
    pub fn keep_rows(mut self, keep: bool) -> Self {
        self.keep_rows = keep;
        self
    }
}

/// Namespace's schema mode (see [`NamespaceOptions::schema`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaMode;

impl From<DataMode> for NamespaceOptions {
    fn from(data: DataMode) -> Self {
        NamespaceOptions {
            mode: NamespaceMode::Data,
            keep_rows: data.keep_rows,
        }
    }
}

impl From<SchemaMode> for NamespaceOptions {
    fn from(_: SchemaMode) -> Self {
        NamespaceOptions {
            mode: NamespaceMode::Schema,
            keep_rows: false,
        }
    }
}
