//! The insert planner: the rows a `create` call will write, with the foreign keys between them,
//! inserted one multi-row statement per table in foreign-key order.
//!
//! A [`Plan`] holds nodes: one row each, its column values, and the references to other nodes
//! whose keys the database has not assigned yet (a post's `author_id` before its author exists).
//! Executing it repeats rounds until every node is written:
//!
//! 1. group the pending nodes by factory, and link the groups by their pending references;
//! 2. every group that depends on no other pending group (a source of that graph) is written in
//!    one `INSERT … RETURNING …` per 65,535 bind parameters (its columns unnested from arrays, or
//!    a `VALUES` list: see [`bulk_insert`]);
//! 3. a group that references itself (threaded comments) writes the rows that are ready, and the
//!    rest in later rounds; a cycle between groups (boards ↔ board columns) with no row ready is
//!    broken at a nullable reference, inserted as NULL and set by an `UPDATE` once its target
//!    exists.
//!
//! After a wave, `after_create` hooks of the rows written run and may add children: they form
//! the next wave, planned the same way. A plan of more than one statement runs inside a
//! transaction (a savepoint when the connection is already in one), so a failure leaves nothing
//! half-written.

use std::any::Any;
use std::sync::Arc;

use sea_query::{
    Alias, Expr, ExprTrait, IntoTableRef, PostgresQueryBuilder, Query, ReturningClause, TableRef,
    Value,
};
use sea_query_sqlx::SqlxBinder;
use sqlx::postgres::PgRow;
use sqlx::{Connection, FromRow, PgConnection, Row};

use crate::context::TestContext;
use crate::context::state::{InsertEvent, StatementKind};
use crate::error::{Error, Result};
use crate::factory::errors::{decode_error, statement_error};
use crate::factory::{Attributes, Factory, FactoryBuilder, Node, Table};

/// PostgreSQL's limit on bind parameters in one statement.
pub const MAX_BIND_PARAMETERS: usize = 65_535;

/// Rows per statement for a table without columns to write (`VALUES (DEFAULT), …`).
const DEFAULT_ROWS_PER_STATEMENT: usize = 10_000;

/// How deep `belongs_to` associations may nest before the planner assumes a loop.
const MAX_DEPTH: usize = 64;

/// Decodes a row `RETURNING` gave into the model, boxed.
pub type Decoder = fn(&PgRow) -> std::result::Result<Box<dyn Any + Send>, sqlx::Error>;

/// Reads the referenced key out of a created parent (boxed as the node's result) as a column
/// value of the child; `None` when the box holds another type.
pub type KeyFn = fn(&(dyn Any + Send)) -> Option<Value>;

/// An `after_create` hook, type-erased: receives the created row and the plan to add children to.
#[doc(hidden)]
pub type ErasedHook = Arc<dyn Fn(&(dyn Any + Send), &mut Plan) -> Result<()> + Send + Sync>;

/// The decoder of model `M`: its `sqlx::FromRow`, boxed.
pub fn decoder<M>() -> Decoder
where
    M: for<'r> FromRow<'r, PgRow> + Send + 'static,
{
    |row| M::from_row(row).map(|model| Box::new(model) as Box<dyn Any + Send>)
}

/// A node of a [`Plan`]: one row to insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(pub(crate) usize);

/// A column whose value is the key of another node, known once that node is written.
#[derive(Debug, Clone)]
pub struct Ref {
    column: &'static str,
    target: NodeId,
    key: KeyFn,
    nullable: bool,
}

impl Ref {
    /// `column` takes `key` of the row `target`; `nullable` when it may be written as NULL first
    /// and set later (what breaks a foreign-key cycle).
    pub fn new(column: &'static str, target: NodeId, key: KeyFn, nullable: bool) -> Self {
        Self {
            column,
            target,
            key,
            nullable,
        }
    }
}

#[derive(Debug)]
struct PendingRef {
    index: usize,
    column: &'static str,
    target: NodeId,
    key: KeyFn,
    nullable: bool,
    /// Written as NULL now, set by an UPDATE later (a broken cycle).
    deferred: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeState {
    /// Reserved by a graph, not described yet.
    Reserved,
    Pending,
    Inserted,
}

struct PlanNode {
    table: &'static Table,
    columns: Vec<&'static str>,
    values: Vec<Value>,
    refs: Vec<PendingRef>,
    decode: Decoder,
    hooks: Vec<ErasedHook>,
    state: NodeState,
    result: Option<Box<dyn Any + Send>>,
    /// `(tableoid, ctid)` of the written row, read when an UPDATE must find it again.
    location: Option<(i64, String)>,
}

/// The rows one `create` call writes, and the order to write them in. Built by the generated
/// factories (`XFactory::create`, `create_list`, [`Graph`](crate::factory::Graph)); not
/// something tests build by hand.
pub struct Plan {
    ctx: Arc<TestContext>,
    graph: u64,
    nodes: Vec<PlanNode>,
    slot: Option<NodeId>,
    depth: usize,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("test", &self.ctx.name())
            .field("nodes", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

impl Plan {
    pub(crate) fn new(ctx: Arc<TestContext>) -> Self {
        Self {
            ctx,
            graph: 0,
            nodes: Vec::new(),
            slot: None,
            depth: 0,
        }
    }

    pub(crate) fn for_graph(ctx: Arc<TestContext>, graph: u64, nodes: usize) -> Self {
        let mut plan = Self::new(ctx);
        plan.graph = graph;
        for _ in 0..nodes {
            plan.nodes.push(PlanNode {
                table: &RESERVED,
                columns: Vec::new(),
                values: Vec::new(),
                refs: Vec::new(),
                decode: |_| Err(sqlx::Error::RowNotFound),
                hooks: Vec::new(),
                state: NodeState::Reserved,
                result: None,
                location: None,
            });
        }
        plan
    }

    /// The test context the plan builds and counts in.
    pub fn context(&self) -> &TestContext {
        &self.ctx
    }

    /// The node reserved for the builder being planned, if a graph reserved one (taken by the
    /// generated `__plan` before it plans its parents).
    pub fn take_slot(&mut self) -> Option<NodeId> {
        self.slot.take()
    }

    pub(crate) fn set_slot(&mut self, slot: NodeId) {
        self.slot = Some(slot);
    }

    /// Plans a parent (or child) row from its builder; `decode` is `None` when its model has no
    /// `sqlx::FromRow`, which is then reported.
    pub fn plan<B: FactoryBuilder>(
        &mut self,
        builder: B,
        decode: Option<Decoder>,
    ) -> Result<NodeId> {
        let table = B::Model::TABLE;
        let Some(decode) = decode else {
            return Err(Error::Factory {
                factory: table.factory().to_string(),
                message: format!(
                    "creating it needs `sqlx::FromRow` to read back the row the database stored: \
                     add `#[derive(sqlx::FromRow)]` to the model of table {}",
                    display_table(table)
                ),
            });
        };
        if self.depth >= MAX_DEPTH {
            return Err(Error::Factory {
                factory: table.factory().to_string(),
                message: format!(
                    "associations nest more than {MAX_DEPTH} levels deep: a required `belongs_to` \
                     loop? Make one of the foreign keys an `Option` so it is not created by default"
                ),
            });
        }
        let saved = self.slot.take();
        self.depth += 1;
        let planned = builder.__plan(self, decode);
        self.depth -= 1;
        self.slot = saved;
        planned
    }

    /// The plan node of a graph's `node`, checking it belongs to this plan's graph.
    pub fn node<M: Factory>(&self, node: &Node<M>) -> Result<NodeId> {
        if node.graph == self.graph && node.index < self.nodes.len() {
            Ok(NodeId(node.index))
        } else {
            Err(Error::Factory {
                factory: M::TABLE.factory().to_string(),
                message: "a graph node was used outside its graph: pass `Node`s only to builders \
                          added to the same `Graph`, and create them with that graph's `create`"
                    .to_string(),
            })
        }
    }

    /// Adds the row `attributes` of `table` (into `slot` when a graph reserved one), whose
    /// `refs` columns take the keys of other nodes.
    pub fn push(
        &mut self,
        slot: Option<NodeId>,
        table: &'static Table,
        attributes: Attributes,
        refs: Vec<Ref>,
        decode: Decoder,
        hooks: Vec<ErasedHook>,
    ) -> Result<NodeId> {
        let mut columns = Vec::with_capacity(attributes.len());
        let mut values = Vec::with_capacity(attributes.len());
        for (column, value) in attributes {
            columns.push(column);
            values.push(value);
        }
        let mut pending = Vec::with_capacity(refs.len());
        for r in refs {
            let Some(index) = columns.iter().position(|c| *c == r.column) else {
                return Err(Error::Factory {
                    factory: table.factory().to_string(),
                    message: format!("the association's column `{}` is not a column", r.column),
                });
            };
            pending.push(PendingRef {
                index,
                column: r.column,
                target: r.target,
                key: r.key,
                nullable: r.nullable,
                deferred: false,
            });
        }
        let node = PlanNode {
            table,
            columns,
            values,
            refs: pending,
            decode,
            hooks,
            state: NodeState::Pending,
            result: None,
            location: None,
        };
        match slot {
            Some(NodeId(i)) if self.nodes.get(i).map(|n| n.state) == Some(NodeState::Reserved) => {
                self.nodes[i] = node;
                Ok(NodeId(i))
            }
            Some(_) => Err(Error::Factory {
                factory: table.factory().to_string(),
                message: "a graph node was described twice".to_string(),
            }),
            None => {
                self.nodes.push(node);
                Ok(NodeId(self.nodes.len() - 1))
            }
        }
    }

    /// The created row of `node`, as its model.
    pub(crate) fn take_result<M: 'static>(&mut self, node: NodeId) -> Result<M> {
        self.take_any(node)
            .and_then(|boxed| boxed.downcast::<M>().ok())
            .map(|boxed| *boxed)
            .ok_or_else(|| Error::Factory {
                factory: std::any::type_name::<M>().to_string(),
                message: "the created row is missing from the plan".to_string(),
            })
    }

    pub(crate) fn take_any(&mut self, node: NodeId) -> Option<Box<dyn Any + Send>> {
        self.nodes.get_mut(node.0).and_then(|n| n.result.take())
    }

    /// How many statements the pending rows need at least, to decide on a transaction: more than
    /// one group, more than one chunk, references or hooks.
    fn needs_transaction(&self) -> bool {
        let mut first: Option<&'static str> = None;
        let mut rows = 0usize;
        let mut per_statement = usize::MAX;
        for node in self.nodes.iter().filter(|n| n.state == NodeState::Pending) {
            if !node.refs.is_empty() || !node.hooks.is_empty() {
                return true;
            }
            match first {
                None => first = Some(node.table.factory()),
                Some(f) if f != node.table.factory() => return true,
                Some(_) => {}
            }
            rows += 1;
            per_statement = rows_per_statement(node.columns.len());
        }
        rows > per_statement
    }

    /// Writes every node, in transaction when it takes more than one statement.
    pub(crate) async fn execute(&mut self, conn: &mut PgConnection) -> Result<()> {
        if let Some(node) = self.nodes.iter().find(|n| n.state == NodeState::Reserved) {
            return Err(Error::Factory {
                factory: node.table.factory().to_string(),
                message: "a graph node was reserved but never described".to_string(),
            });
        }
        if !self.needs_transaction() {
            return self.run(conn).await;
        }
        let mut tx = conn
            .begin()
            .await
            .map_err(Error::db("starting the transaction of a factory's inserts"))?;
        match self.run(&mut tx).await {
            Ok(()) => tx
                .commit()
                .await
                .map_err(Error::db("committing a factory's inserts")),
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    async fn run(&mut self, conn: &mut PgConnection) -> Result<()> {
        loop {
            self.insert_pending(conn).await?;
            if !self.run_hooks()? {
                return Ok(());
            }
        }
    }

    /// Runs the `after_create` hooks of written rows; whether they added rows.
    fn run_hooks(&mut self) -> Result<bool> {
        let before = self.nodes.len();
        for i in 0..self.nodes.len() {
            if self.nodes[i].state != NodeState::Inserted || self.nodes[i].hooks.is_empty() {
                continue;
            }
            let hooks = std::mem::take(&mut self.nodes[i].hooks);
            let Some(result) = self.nodes[i].result.take() else {
                continue;
            };
            let ctx = Arc::clone(&self.ctx);
            let outcome = ctx.sync_scope(|| {
                hooks
                    .iter()
                    .try_for_each(|hook| hook(result.as_ref(), self))
            });
            self.nodes[i].result = Some(result);
            outcome?;
        }
        Ok(self.nodes.len() > before)
    }

    /// Writes every pending node, round after round, then closes broken cycles.
    async fn insert_pending(&mut self, conn: &mut PgConnection) -> Result<()> {
        loop {
            let batches = self.next_batches()?;
            if batches.is_empty() {
                break;
            }
            for batch in batches {
                self.insert_batch(conn, &batch).await?;
            }
        }
        self.close_cycles(conn).await
    }

    /// Whether `r` still waits for its target.
    fn waits(&self, r: &PendingRef) -> bool {
        !r.deferred && self.nodes[r.target.0].state != NodeState::Inserted
    }

    /// The batches of the next round: node lists of one factory each.
    fn next_batches(&mut self) -> Result<Vec<Vec<usize>>> {
        loop {
            // Groups of pending nodes, by factory.
            let mut group_keys: Vec<&'static str> = Vec::new();
            let mut group_nodes: Vec<Vec<usize>> = Vec::new();
            let mut group_of = vec![usize::MAX; self.nodes.len()];
            for (i, node) in self.nodes.iter().enumerate() {
                if node.state != NodeState::Pending {
                    continue;
                }
                let key = node.table.factory();
                let g = match group_keys.iter().position(|k| *k == key) {
                    Some(g) => g,
                    None => {
                        group_keys.push(key);
                        group_nodes.push(Vec::new());
                        group_keys.len() - 1
                    }
                };
                group_of[i] = g;
                group_nodes[g].push(i);
            }
            if group_keys.is_empty() {
                return Ok(Vec::new());
            }
            let n = group_keys.len();
            let mut edges = vec![vec![false; n]; n];
            for (g, nodes) in group_nodes.iter().enumerate() {
                for &i in nodes {
                    for r in &self.nodes[i].refs {
                        if self.waits(r) {
                            edges[g][group_of[r.target.0]] = true;
                        }
                    }
                }
            }
            let sccs = strongly_connected(&edges);
            let mut scc_of = vec![0; n];
            for (s, members) in sccs.iter().enumerate() {
                for &g in members {
                    scc_of[g] = s;
                }
            }
            let mut batches = Vec::new();
            let mut stuck: Option<usize> = None;
            for (s, members) in sccs.iter().enumerate() {
                let is_source = members
                    .iter()
                    .all(|&g| (0..n).all(|h| !edges[g][h] || scc_of[h] == s));
                if !is_source {
                    continue;
                }
                let closed = members.len() == 1 && !edges[members[0]][members[0]];
                let mut any = false;
                for &g in members {
                    let ready: Vec<usize> = if closed {
                        group_nodes[g].clone()
                    } else {
                        group_nodes[g]
                            .iter()
                            .copied()
                            .filter(|&i| !self.nodes[i].refs.iter().any(|r| self.waits(r)))
                            .collect()
                    };
                    if !ready.is_empty() {
                        any = true;
                        batches.push(ready);
                    }
                }
                if !any && stuck.is_none() {
                    stuck = Some(s);
                }
            }
            if !batches.is_empty() {
                return Ok(batches);
            }
            // Every source is a cycle with no row ready: write one reference as NULL for now.
            let Some(s) = stuck else {
                return Ok(Vec::new());
            };
            self.break_cycle(&sccs[s], &group_nodes)?;
        }
    }

    fn break_cycle(&mut self, members: &[usize], group_nodes: &[Vec<usize>]) -> Result<()> {
        for &g in members {
            for &i in &group_nodes[g] {
                let found = self.nodes[i]
                    .refs
                    .iter()
                    .position(|r| r.nullable && self.waits(r));
                if let Some(k) = found {
                    self.nodes[i].refs[k].deferred = true;
                    return Ok(());
                }
            }
        }
        let tables: Vec<String> = members
            .iter()
            .filter_map(|&g| group_nodes[g].first())
            .map(|&i| display_table(self.nodes[i].table))
            .collect();
        let factory = members
            .first()
            .and_then(|&g| group_nodes[g].first())
            .map(|&i| self.nodes[i].table.factory().to_string())
            .unwrap_or_default();
        Err(Error::Factory {
            factory,
            message: format!(
                "the rows of {} reference each other in a cycle whose foreign keys are all \
                 required: one of them must be an `Option` field (a nullable column), written as \
                 NULL first and set once its row exists",
                tables.join(", ")
            ),
        })
    }

    /// The values of node `i`, references resolved (deferred ones keep their NULL).
    fn resolved_values(&mut self, i: usize) -> Result<Vec<Value>> {
        let mut values = std::mem::take(&mut self.nodes[i].values);
        let node = &self.nodes[i];
        for r in node.refs.iter().filter(|r| !r.deferred) {
            values[r.index] = self.key_of(node.table, r)?;
        }
        Ok(values)
    }

    fn key_of(&self, table: &'static Table, r: &PendingRef) -> Result<Value> {
        let target = &self.nodes[r.target.0];
        target
            .result
            .as_deref()
            .and_then(|row| (r.key)(row))
            .ok_or_else(|| Error::Factory {
                factory: table.factory().to_string(),
                message: format!(
                    "the key for column `{}` could not be read from the {} row it references",
                    r.column,
                    display_table(target.table)
                ),
            })
    }

    async fn insert_batch(&mut self, conn: &mut PgConnection, nodes: &[usize]) -> Result<()> {
        let Some(&first) = nodes.first() else {
            return Ok(());
        };
        let table = self.nodes[first].table;
        let columns = self.nodes[first].columns.clone();
        for chunk in nodes.chunks(rows_per_statement(columns.len())) {
            let locate = chunk
                .iter()
                .any(|&i| self.nodes[i].refs.iter().any(|r| r.deferred));
            let mut rows = Vec::with_capacity(chunk.len());
            for &i in chunk {
                rows.push(self.resolved_values(i)?);
            }
            let BulkInsert {
                mut statement,
                arrays,
            } = bulk_insert(table, &columns, rows).map_err(|e| Error::Factory {
                factory: table.factory().to_string(),
                message: format!("building the INSERT: {e}"),
            })?;
            statement.returning(returning(table, locate));
            let (sql, values) = statement.build_sqlx(PostgresQueryBuilder);
            let values = match arrays {
                Some(arrays) => bind_arrays(arrays).map_err(|e| Error::Factory {
                    factory: table.factory().to_string(),
                    message: format!("binding the columns as arrays: {e}"),
                })?,
                None => sqlx::IntoArguments::into_arguments(values),
            };
            let rows = sqlx::query_with(sqlx::AssertSqlSafe(sql), values)
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| statement_error(e, table))?;
            self.record(table, rows.len(), StatementKind::Insert);
            if rows.len() != chunk.len() {
                return Err(Error::Factory {
                    factory: table.factory().to_string(),
                    message: format!(
                        "the INSERT into {} returned {} rows for {} (a trigger that skips rows?)",
                        display_table(table),
                        rows.len(),
                        chunk.len()
                    ),
                });
            }
            for (row, &i) in rows.iter().zip(chunk) {
                let node = &mut self.nodes[i];
                node.result = Some((node.decode)(row).map_err(|e| decode_error(e, table))?);
                if locate {
                    node.location = Some(locate_row(row, table)?);
                }
                node.state = NodeState::Inserted;
            }
        }
        Ok(())
    }

    /// Sets the references written as NULL to break cycles, now that their targets exist.
    async fn close_cycles(&mut self, conn: &mut PgConnection) -> Result<()> {
        for i in 0..self.nodes.len() {
            if !self.nodes[i].refs.iter().any(|r| r.deferred) {
                continue;
            }
            let node = &self.nodes[i];
            let table = node.table;
            let mut sets = Vec::new();
            for r in node.refs.iter().filter(|r| r.deferred) {
                sets.push((Alias::new(r.column), Expr::val(self.key_of(table, r)?)));
            }
            let Some((oid, ctid)) = node.location.clone() else {
                return Err(Error::Factory {
                    factory: table.factory().to_string(),
                    message: "the row to complete after a cycle cannot be found".to_string(),
                });
            };
            let mut update = Query::update();
            update
                .table(table_ref(table))
                .values(sets)
                .and_where(
                    Expr::col(Alias::new("tableoid"))
                        .cast_as(Alias::new("bigint"))
                        .eq(oid),
                )
                .and_where(
                    Expr::col(Alias::new("ctid")).eq(Expr::val(ctid).cast_as(Alias::new("tid"))),
                )
                .returning(returning(table, false));
            let (sql, values) = update.build_sqlx(PostgresQueryBuilder);
            let row = sqlx::query_with(sqlx::AssertSqlSafe(sql), values)
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| statement_error(e, table))?;
            self.record(table, 0, StatementKind::Update);
            let node = &mut self.nodes[i];
            node.result = Some((node.decode)(&row).map_err(|e| decode_error(e, table))?);
            for r in node.refs.iter_mut() {
                r.deferred = false;
            }
            node.refs.clear();
        }
        Ok(())
    }

    fn record(&self, table: &'static Table, rows: usize, kind: StatementKind) {
        let name = display_table(table);
        self.ctx.factory_state().record(&InsertEvent {
            table: &name,
            factory: table.factory(),
            rows,
            kind,
        });
    }
}

/// A placeholder for the nodes a graph reserves before describing them.
static RESERVED: Table = Table::__new("<reserved>", None, "<reserved>", &[], &[]);

/// Rows per `INSERT` for `columns` columns: as many as fit in the bind-parameter limit.
///
/// ```
/// use seedbed::factory::rows_per_statement;
/// assert_eq!(rows_per_statement(4), 16_383);
/// assert_eq!(rows_per_statement(7), 9_362);
/// ```
pub fn rows_per_statement(columns: usize) -> usize {
    MAX_BIND_PARAMETERS
        .checked_div(columns)
        .map_or(DEFAULT_ROWS_PER_STATEMENT, |rows| rows.max(1))
}

/// A bulk `INSERT` ([`bulk_insert`]): the statement, and the columns' arrays when it unnests
/// them (bound by seedbed itself, so arrays may hold NULLs).
#[derive(Debug)]
pub struct BulkInsert {
    /// The statement, without `RETURNING`; its parameters are placeholders when `arrays` is set.
    pub statement: sea_query::InsertStatement,
    /// One array of values per column, bound in order, when the statement unnests them.
    pub arrays: Option<Vec<Vec<Value>>>,
}

/// The `INSERT` of `rows` (values in `columns` order) into `table`, without its `RETURNING`.
///
/// Two rows or more whose columns all have a PostgreSQL array form are sent as one array per
/// column, `INSERT … SELECT unnest($1), unnest($2), …`: a statement of a few parameters, parsed
/// and planned in no time whatever the number of rows (the arrays are unnested in lockstep, so
/// rows keep their order). Rows with a column that is itself an array (`text[]`), or of a type
/// without an array form here (numeric, …), are sent as `INSERT … VALUES (…), (…)`, as is a
/// single row.
///
/// ```
/// use seedbed::factory::{BulkInsert, Factory, Value, bulk_insert};
/// use seedbed::factory::sea_query::PostgresQueryBuilder;
///
/// #[derive(Debug, seedbed::Factory)]
/// #[factory(table = "users")]
/// pub struct User {
///     #[factory(generated)]
///     pub id: i64,
///     #[factory(sequence = "user{n}@example.com")]
///     pub email: String,
///     pub invited_by_id: Option<i64>,
///     #[factory(default = vec!["a".to_string()])]
///     pub tags: Vec<String>,
/// }
///
/// let rows = |n, keep| -> Vec<Vec<Value>> {
///     User::factory().build_list(n).into_iter()
///         .map(|u| u.into_attributes().into_values().into_iter().take(keep).collect())
///         .collect()
/// };
/// let BulkInsert { statement, arrays } =
///     bulk_insert(User::TABLE, &["email", "invited_by_id"], rows(3, 2)).unwrap();
/// assert_eq!(
///     statement.build(PostgresQueryBuilder).0,
///     r#"INSERT INTO "users" ("email", "invited_by_id") SELECT unnest($1), unnest($2)"#
/// );
/// assert_eq!(arrays.map(|a| a[1].len()), Some(3)); // three NULLs, bound as one int8[]
///
/// // A text[] column: one VALUES tuple per row.
/// let insert = bulk_insert(User::TABLE, &["email", "invited_by_id", "tags"], rows(2, 3)).unwrap();
/// assert_eq!(
///     insert.statement.build(PostgresQueryBuilder).0,
///     r#"INSERT INTO "users" ("email", "invited_by_id", "tags") VALUES ($1, $2, $3), ($4, $5, $6)"#
/// );
/// assert!(insert.arrays.is_none());
/// ```
pub fn bulk_insert(
    table: &Table,
    columns: &[&'static str],
    rows: Vec<Vec<Value>>,
) -> std::result::Result<BulkInsert, sea_query::error::Error> {
    let mut statement = Query::insert();
    statement.into_table(table_ref(table));
    if columns.is_empty() {
        statement.or_default_values_many(u32::try_from(rows.len()).unwrap_or(u32::MAX));
        return Ok(BulkInsert {
            statement,
            arrays: None,
        });
    }
    statement.columns(columns.iter().map(|c| Alias::new(*c)));
    match unnest(rows) {
        Ok((select, arrays)) => {
            statement.select_from(select)?;
            Ok(BulkInsert {
                statement,
                arrays: Some(arrays),
            })
        }
        Err(rows) => {
            for row in rows {
                statement.values(row.into_iter().map(Expr::val))?;
            }
            Ok(BulkInsert {
                statement,
                arrays: None,
            })
        }
    }
}

type Unnested = (sea_query::SelectStatement, Vec<Vec<Value>>);

/// `SELECT unnest($1), unnest($2), …` and the columns' arrays, or the rows back when a column
/// has no array form, mixes value kinds, or there is a single row.
fn unnest(rows: Vec<Vec<Value>>) -> std::result::Result<Unnested, Vec<Vec<Value>>> {
    let Some(first) = rows.first().filter(|_| rows.len() > 1) else {
        return Err(rows);
    };
    let Some(types) = first.iter().map(array_type).collect::<Option<Vec<_>>>() else {
        return Err(rows);
    };
    let kinds: Vec<_> = first.iter().map(std::mem::discriminant).collect();
    let uniform = rows.iter().all(|row| {
        row.len() == kinds.len()
            && row
                .iter()
                .zip(&kinds)
                .all(|(v, k)| std::mem::discriminant(v) == *k)
    });
    if !uniform {
        return Err(rows);
    }
    let mut arrays: Vec<Vec<Value>> = types
        .iter()
        .map(|_| Vec::with_capacity(rows.len()))
        .collect();
    for row in rows {
        for (array, value) in arrays.iter_mut().zip(row) {
            array.push(value);
        }
    }
    let mut select = Query::select();
    for ty in types {
        // A placeholder of the array's type: renders `$n` (with the cast of an enum array).
        select.expr(sea_query::Func::cust("unnest").arg(Expr::val(Value::Array(ty, None))));
    }
    Ok((select, arrays))
}

/// The array type a column of these values is sent as, for the kinds [`bind_arrays`] binds.
fn array_type(value: &Value) -> Option<sea_query::ArrayType> {
    match value {
        Value::Bool(_)
        | Value::SmallInt(_)
        | Value::Int(_)
        | Value::BigInt(_)
        | Value::Float(_)
        | Value::Double(_)
        | Value::String(_)
        | Value::Enum(_)
        | Value::Bytes(_)
        | Value::Uuid(_)
        | Value::Json(_)
        | Value::ChronoDate(_)
        | Value::ChronoTime(_)
        | Value::ChronoDateTime(_)
        | Value::ChronoDateTimeUtc(_)
        | Value::ChronoDateTimeWithTimeZone(_) => Some(value.array_type()),
        _ => None,
    }
}

/// Binds each column's values as one PostgreSQL array (NULL elements included).
fn bind_arrays(
    arrays: Vec<Vec<Value>>,
) -> std::result::Result<sqlx::postgres::PgArguments, String> {
    use sqlx::Arguments;
    let mut args = sqlx::postgres::PgArguments::default();
    for column in arrays {
        macro_rules! bind {
            ($variant:ident $(, $map:expr)?) => {{
                let mut out = Vec::with_capacity(column.len());
                for value in column {
                    match value {
                        Value::$variant(v) => out.push(v $(.map($map))?),
                        other => return Err(format!("a column mixes {other:?} with other kinds")),
                    }
                }
                args.add(out).map_err(|e| e.to_string())?;
            }};
        }
        match column.first() {
            Some(Value::Bool(_)) => bind!(Bool),
            Some(Value::SmallInt(_)) => bind!(SmallInt),
            Some(Value::Int(_)) => bind!(Int),
            Some(Value::BigInt(_)) => bind!(BigInt),
            Some(Value::Float(_)) => bind!(Float),
            Some(Value::Double(_)) => bind!(Double),
            Some(Value::String(_)) => bind!(String),
            Some(Value::Bytes(_)) => bind!(Bytes),
            Some(Value::Uuid(_)) => bind!(Uuid),
            Some(Value::Json(_)) => bind!(Json, |json: Box<sea_query::value::prelude::Json>| *json),
            Some(Value::ChronoDate(_)) => bind!(ChronoDate),
            Some(Value::ChronoTime(_)) => bind!(ChronoTime),
            Some(Value::ChronoDateTime(_)) => bind!(ChronoDateTime),
            Some(Value::ChronoDateTimeUtc(_)) => bind!(ChronoDateTimeUtc),
            Some(Value::ChronoDateTimeWithTimeZone(_)) => bind!(ChronoDateTimeWithTimeZone),
            Some(Value::Enum(_)) => {
                let mut labels: Vec<Option<String>> = Vec::with_capacity(column.len());
                for value in column {
                    match value {
                        Value::Enum(sea_query::OptionEnum::Some(e)) => {
                            labels.push(Some(e.value.into_owned()));
                        }
                        Value::Enum(sea_query::OptionEnum::None(_)) => labels.push(None),
                        other => return Err(format!("a column mixes {other:?} with enums")),
                    }
                }
                args.add(labels).map_err(|e| e.to_string())?;
            }
            Some(other) => return Err(format!("{other:?} has no array form")),
            None => args
                .add(Vec::<Option<String>>::new())
                .map_err(|e| e.to_string())?,
        }
    }
    Ok(args)
}

/// `schema.name` or `name`: how statistics and messages name a table.
pub(crate) fn display_table(table: &Table) -> String {
    match table.schema() {
        Some(schema) => format!("{schema}.{}", table.name()),
        None => table.name().to_string(),
    }
}

/// The table as sea-query names it (quoted, schema-qualified when the model names a schema).
pub(crate) fn table_ref(table: &Table) -> TableRef {
    match table.schema() {
        Some(schema) => (Alias::new(schema), Alias::new(table.name())).into_table_ref(),
        None => Alias::new(table.name()).into_table_ref(),
    }
}

/// `RETURNING` the model's columns, and where the row is when it must be updated later.
fn returning(table: &Table, locate: bool) -> ReturningClause {
    let mut exprs: Vec<Expr> = table
        .columns()
        .iter()
        .map(|c| Expr::col(Alias::new(c.name())))
        .collect();
    if locate {
        exprs.push(Expr::col(Alias::new("tableoid")).cast_as(Alias::new("bigint")));
        exprs.push(Expr::col(Alias::new("ctid")).cast_as(Alias::new("text")));
    }
    Query::returning().exprs(exprs)
}

fn locate_row(row: &PgRow, table: &'static Table) -> Result<(i64, String)> {
    let oid: i64 = row
        .try_get("tableoid")
        .map_err(|e| decode_error(e, table))?;
    let ctid: String = row.try_get("ctid").map_err(|e| decode_error(e, table))?;
    Ok((oid, ctid))
}

/// Tarjan's strongly connected components of a small graph given as an adjacency matrix.
fn strongly_connected(edges: &[Vec<bool>]) -> Vec<Vec<usize>> {
    struct State<'a> {
        edges: &'a [Vec<bool>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State<'_>, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for w in 0..s.edges.len() {
            if !s.edges[v][w] {
                continue;
            }
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            s.out.push(component);
        }
    }
    let n = edges.len();
    let mut s = State {
        edges,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_of_a_cycle_and_a_chain() {
        // 0 -> 1 -> 0 (cycle), 2 -> 0, 3 alone with a self-loop.
        let mut e = vec![vec![false; 4]; 4];
        e[0][1] = true;
        e[1][0] = true;
        e[2][0] = true;
        e[3][3] = true;
        let mut sccs = strongly_connected(&e);
        for c in &mut sccs {
            c.sort();
        }
        sccs.sort();
        assert_eq!(sccs, vec![vec![0, 1], vec![2], vec![3]]);
    }
}
