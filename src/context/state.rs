//! What a test context keeps for factories that write: the reuse scope, the insert statistics and
//! the insert observers.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

/// The factory state of one [`TestContext`](crate::context::TestContext).
#[derive(Default)]
pub(crate) struct ContextState {
    reuse: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
    stats: Mutex<BTreeMap<String, TableStats>>,
    observers: Mutex<Vec<InsertObserver>>,
}

impl fmt::Debug for ContextState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextState")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl ContextState {
    pub(crate) fn reuse<M: Send + Sync + 'static>(&self, model: M) {
        self.reuse
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(TypeId::of::<M>(), Arc::new(model));
    }

    pub(crate) fn stop_reusing<M: 'static>(&self) {
        self.reuse
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&TypeId::of::<M>());
    }

    pub(crate) fn reused<M: 'static, R>(&self, f: impl FnOnce(&M) -> R) -> Option<R> {
        let model = self
            .reuse
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&TypeId::of::<M>())
            .cloned()?;
        model.downcast_ref::<M>().map(f)
    }

    /// Counts one statement that wrote `rows` rows into `table`, and tells the observers.
    pub(crate) fn record(&self, event: &InsertEvent<'_>) {
        {
            let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = stats.entry(event.table.to_string()).or_default();
            entry.rows += event.rows as u64;
            entry.statements += 1;
            if event.kind == StatementKind::Update {
                entry.updates += 1;
            }
        }
        let observers = self
            .observers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for observer in observers {
            observer(event);
        }
    }

    pub(crate) fn observe(&self, observer: InsertObserver) {
        self.observers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(observer);
    }

    pub(crate) fn stats(&self) -> InsertStats {
        InsertStats {
            tables: self
                .stats
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

/// Called after every statement a factory runs in a context (see
/// [`TestContext::on_insert`](crate::context::TestContext::on_insert)).
pub type InsertObserver = Arc<dyn Fn(&InsertEvent<'_>) + Send + Sync>;

/// One statement a factory ran: the table, how many rows it wrote, and what kind it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct InsertEvent<'a> {
    /// The table, as `schema.name` or `name` (when the model names no schema).
    pub table: &'a str,
    /// The factory that wrote it (`module::Model`).
    pub factory: &'static str,
    /// How many rows the statement wrote.
    pub rows: usize,
    /// An `INSERT`, or the `UPDATE` that closes a foreign-key cycle.
    pub kind: StatementKind,
}

/// What a factory statement was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatementKind {
    /// A (multi-row) `INSERT … RETURNING`.
    Insert,
    /// An `UPDATE` that sets a foreign key left NULL to break a cycle.
    Update,
}

/// What one table received from factories in a test.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Rows inserted.
    pub rows: u64,
    /// Statements run (inserts and updates).
    pub statements: u64,
    /// Of those, the updates that closed foreign-key cycles.
    pub updates: u64,
}

/// Rows and statements per table that factories wrote in a test: the insert accounting that
/// exposes cascades (one statement per object) and duplicated parents.
///
/// Get it from [`TestDb::stats`](crate::TestDb::stats) or
/// [`TestContext::insert_stats`](crate::context::TestContext::insert_stats). Its `Display` is a
/// table, largest first:
///
/// ```
/// use seedbed::factory::InsertStats;
///
/// let stats = InsertStats::default();
/// assert_eq!(stats.table("users").rows, 0);
/// assert_eq!(stats.total_statements(), 0);
/// assert!(stats.to_string().contains("no rows"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsertStats {
    tables: BTreeMap<String, TableStats>,
}

impl InsertStats {
    /// What `table` received (`name`, or `schema.name` for a model that names its schema).
    pub fn table(&self, table: &str) -> TableStats {
        self.tables.get(table).copied().unwrap_or_default()
    }

    /// Every table that received rows, by name.
    pub fn tables(&self) -> impl Iterator<Item = (&str, &TableStats)> {
        self.tables
            .iter()
            .map(|(name, stats)| (name.as_str(), stats))
    }

    /// Rows inserted in all tables.
    pub fn total_rows(&self) -> u64 {
        self.tables.values().map(|t| t.rows).sum()
    }

    /// Statements run in all tables.
    pub fn total_statements(&self) -> u64 {
        self.tables.values().map(|t| t.statements).sum()
    }

    /// What was written since `before` (a snapshot taken earlier in the same test).
    ///
    /// ```
    /// use seedbed::factory::InsertStats;
    /// let before = InsertStats::default();
    /// assert_eq!(before.since(&before).total_rows(), 0);
    /// ```
    pub fn since(&self, before: &InsertStats) -> InsertStats {
        let tables = self
            .tables
            .iter()
            .filter_map(|(name, now)| {
                let then = before.table(name);
                let diff = TableStats {
                    rows: now.rows - then.rows.min(now.rows),
                    statements: now.statements - then.statements.min(now.statements),
                    updates: now.updates - then.updates.min(now.updates),
                };
                (diff != TableStats::default()).then(|| (name.clone(), diff))
            })
            .collect();
        InsertStats { tables }
    }
}

impl fmt::Display for InsertStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tables.is_empty() {
            return write!(f, "factories inserted no rows");
        }
        let mut rows: Vec<(&String, &TableStats)> = self.tables.iter().collect();
        rows.sort_by(|a, b| b.1.rows.cmp(&a.1.rows).then(a.0.cmp(b.0)));
        let width = rows
            .iter()
            .map(|(name, _)| name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(
            f,
            "{:<width$}  {:>9}  {:>10}",
            "table", "rows", "statements"
        )?;
        for (name, stats) in rows {
            writeln!(
                f,
                "{name:<width$}  {:>9}  {:>10}",
                stats.rows, stats.statements
            )?;
        }
        write!(
            f,
            "{:<width$}  {:>9}  {:>10}",
            "total",
            self.total_rows(),
            self.total_statements()
        )
    }
}
