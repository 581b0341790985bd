//! The insert planner: the rows a `create` call will write, with the foreign keys between them,
//! inserted one multi-row statement per table in foreign-key order.
//!
//! A [`Plan`] holds nodes: one row each, its column values, and the references to other nodes
//! whose keys the database has not assigned yet (a post's `author_id` before its author exists).
//! Executing it repeats rounds until every node is written:
//!
//! 1. group the pending nodes by factory, and link the groups by their pending references;
//! 2. every group that depends on no other pending group (a source of that graph) is written in
//!    one `INSERT … RETURNING …` per bind-parameter limit of the backend (65,535 on
//!    PostgreSQL), its columns unnested from arrays or a `VALUES` list (see [`bulk_insert`]);
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

use sea_query::Value;
use sqlx::Connection;

use crate::backend::{Decoders, Dialect};
use crate::context::TestContext;
use crate::error::{Error, Result};
use crate::factory::{Attributes, Factory, FactoryBuilder, Node, Table};

pub(crate) use super::insert::display_table;
use super::insert::rows_within;
pub use super::insert::{BulkInsert, MAX_BIND_PARAMETERS, bulk_insert, rows_per_statement};

mod write;

/// How deep `belongs_to` associations may nest before the planner assumes a loop.
const MAX_DEPTH: usize = 64;

/// Decodes a row `RETURNING` gave into the model, boxed, on each backend the model has
/// `sqlx::FromRow` for.
pub type Decoder = Decoders;

/// Reads the referenced key out of a created parent (boxed as the node's result) as a column
/// value of the child; `None` when the box holds another type.
pub type KeyFn = fn(&(dyn Any + Send)) -> Option<Value>;

/// Sets a child's foreign-key field from its created parent (both boxed as `Any`); `None` when
/// a box holds another type.
pub type AssignFn = fn(&mut (dyn Any + Send), &(dyn Any + Send)) -> Option<()>;

/// A model's column/value pairs, from the model boxed as `Any`; `None` for another type.
type AttributesFn = fn(Box<dyn Any + Send>) -> Option<Attributes>;

/// A hook of a builder, type-erased.
#[doc(hidden)]
#[derive(Clone)]
pub enum ErasedHook {
    /// `after_create`: receives the created row and the plan to add children to.
    Children(ChildrenHook),
    /// `after_create_db`: receives the created row and the connection the plan writes on, once
    /// the rows of its wave are written.
    Database(DbHook),
    /// `before_create_db`: receives the built row, its foreign keys set, and the connection,
    /// right before the row's `INSERT`.
    Before(BeforeHook, KeepFn),
}

/// Boxes a model of the hook's type as `Send` to keep it in the plan (a `before_create_db` hook
/// needs a `Send` model; a model without one need not be): the box back when it holds another
/// type.
#[doc(hidden)]
pub type KeepFn = fn(Box<dyn Any>) -> std::result::Result<Box<dyn Any + Send>, Box<dyn Any>>;

/// An `after_create` hook, type-erased: the created row to the children it plans.
#[doc(hidden)]
pub type ChildrenHook = Arc<dyn Fn(&(dyn Any + Send), &mut Plan) -> Result<()> + Send + Sync>;

/// What an `after_create_db` hook returns: a future borrowing the row and the connection.
pub type HookFuture<'c> = std::pin::Pin<Box<dyn Future<Output = Result<()>> + Send + 'c>>;

/// An `after_create_db` hook, type-erased: the row and the connection as `Any`, downcast by the
/// hook to the model and the connection type it was written for.
#[doc(hidden)]
pub type DbHook = Arc<
    dyn for<'c> Fn(&'c (dyn Any + Send), &'c mut (dyn Any + Send)) -> HookFuture<'c> + Send + Sync,
>;

/// A `before_create_db` hook, type-erased: the built model and the connection as `Any`,
/// downcast by the hook.
#[doc(hidden)]
pub type BeforeHook = Arc<
    dyn for<'c> Fn(&'c mut (dyn Any + Send), &'c mut (dyn Any + Send)) -> HookFuture<'c>
        + Send
        + Sync,
>;

/// The decoders of a created model `M`: PostgreSQL's, and those `#[derive(Factory)]` found for
/// the other backends.
pub(crate) fn model_decoders<M>() -> Decoder
where
    M: Factory + crate::factory::Row,
{
    Decoders::join(Some(decoder::<M, sqlx::Postgres>()), M::__decoders()).unwrap_or_default()
}

/// The decoder of model `M`: its `sqlx::FromRow` for the backend `DB`, boxed.
pub fn decoder<M, DB>() -> Decoder
where
    DB: Dialect,
    M: for<'r> sqlx::FromRow<'r, DB::Row> + Send + 'static,
{
    DB::decoders::<M>()
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
    assign: Option<AssignFn>,
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
            assign: None,
            nullable,
        }
    }

    /// Also sets the model's field from the created parent (`assign`), so that a
    /// `before_create_db` hook sees the key.
    pub fn assigning(mut self, assign: AssignFn) -> Self {
        self.assign = Some(assign);
        self
    }
}

#[derive(Debug)]
struct PendingRef {
    /// The column's position in the node's values (`usize::MAX` until a node kept as a model
    /// has its attributes).
    index: usize,
    column: &'static str,
    target: NodeId,
    key: KeyFn,
    assign: Option<AssignFn>,
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
    /// Where the written row is (the backend's locator), read when an UPDATE must find it again.
    location: Option<Vec<Value>>,
    /// The built model, kept until its `before_create_db` hooks have run (then `columns` and
    /// `values` are its attributes).
    model: Option<(Box<dyn Any + Send>, AttributesFn)>,
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
                decode: Decoders::default(),
                hooks: Vec::new(),
                state: NodeState::Reserved,
                result: None,
                location: None,
                model: None,
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
        let mut pending = pending_refs(refs);
        locate_refs(table, &columns, &mut pending)?;
        self.place(
            slot,
            PlanNode {
                table,
                columns,
                values,
                refs: pending,
                decode,
                hooks,
                state: NodeState::Pending,
                result: None,
                location: None,
                model: None,
            },
        )
    }

    /// Adds the row of `model` as [`push`](Self::push) does; a model with `before_create_db`
    /// hooks is kept as it is until they have run, right before its `INSERT`.
    pub fn push_model<M: Factory + 'static>(
        &mut self,
        slot: Option<NodeId>,
        model: M,
        refs: Vec<Ref>,
        decode: Decoder,
        hooks: Vec<ErasedHook>,
    ) -> Result<NodeId> {
        let keep = hooks.iter().find_map(|hook| match hook {
            ErasedHook::Before(_, keep) => Some(*keep),
            _ => None,
        });
        let Some(keep) = keep else {
            return self.push(slot, M::TABLE, model.into_attributes(), refs, decode, hooks);
        };
        let Ok(model) = keep(Box::new(model)) else {
            return Err(Error::Factory {
                factory: M::TABLE.factory().to_string(),
                message: "a before_create_db hook was added for another model".to_string(),
            });
        };
        let attributes: AttributesFn = |model| {
            model
                .downcast::<M>()
                .ok()
                .map(|model| model.into_attributes())
        };
        self.place(
            slot,
            PlanNode {
                table: M::TABLE,
                columns: Vec::new(),
                values: Vec::new(),
                refs: pending_refs(refs),
                decode,
                hooks,
                state: NodeState::Pending,
                result: None,
                location: None,
                model: Some((model, attributes)),
            },
        )
    }

    /// Puts `node` into `slot` (a graph's reserved node), or at the end.
    fn place(&mut self, slot: Option<NodeId>, node: PlanNode) -> Result<NodeId> {
        let table = node.table;
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
    fn needs_transaction(&self, max_parameters: usize) -> bool {
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
            per_statement = rows_within(max_parameters, node.columns.len());
        }
        rows > per_statement
    }

    /// Writes every node, in transaction when it takes more than one statement.
    pub(crate) async fn execute<DB: Dialect>(&mut self, conn: &mut DB::Connection) -> Result<()> {
        if let Some(node) = self.nodes.iter().find(|n| n.state == NodeState::Reserved) {
            return Err(Error::Factory {
                factory: node.table.factory().to_string(),
                message: "a graph node was reserved but never described".to_string(),
            });
        }
        // A model without `sqlx::FromRow` for this backend's rows is reported before anything is
        // written (rows planned later by hooks run in the plan's transaction).
        for node in self.nodes.iter().filter(|n| n.state == NodeState::Pending) {
            write::decode_with::<DB>(&node.decode, node.table)?;
        }
        if !self.needs_transaction(DB::MAX_BIND_PARAMETERS) {
            return self.run::<DB>(conn).await;
        }
        let mut tx = Connection::begin(conn)
            .await
            .map_err(Error::db("starting the transaction of a factory's inserts"))?;
        match self.run::<DB>(&mut tx).await {
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

    async fn run<DB: Dialect>(&mut self, conn: &mut DB::Connection) -> Result<()> {
        loop {
            self.insert_pending::<DB>(conn).await?;
            self.run_db_hooks::<DB>(conn).await?;
            if !self.run_hooks()? {
                return Ok(());
            }
        }
    }

    /// Runs the `after_create_db` hooks of written rows, in the order the rows were planned,
    /// on the plan's connection (inside its transaction).
    async fn run_db_hooks<DB: Dialect>(&mut self, conn: &mut DB::Connection) -> Result<()> {
        for i in 0..self.nodes.len() {
            if self.nodes[i].state != NodeState::Inserted {
                continue;
            }
            let (db_hooks, rest): (Vec<ErasedHook>, Vec<ErasedHook>) =
                std::mem::take(&mut self.nodes[i].hooks)
                    .into_iter()
                    .partition(|h| matches!(h, ErasedHook::Database(_)));
            self.nodes[i].hooks = rest;
            if db_hooks.is_empty() {
                continue;
            }
            let Some(result) = self.nodes[i].result.take() else {
                continue;
            };
            let mut ran = Ok(());
            for hook in &db_hooks {
                if let ErasedHook::Database(hook) = hook {
                    let erased: &mut (dyn Any + Send) = &mut *conn;
                    let fut = hook(result.as_ref(), erased);
                    ran = Arc::clone(&self.ctx).scope(fut).await;
                    if ran.is_err() {
                        break;
                    }
                }
            }
            self.nodes[i].result = Some(result);
            ran?;
        }
        Ok(())
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
                hooks.iter().try_for_each(|hook| match hook {
                    ErasedHook::Children(hook) => hook(result.as_ref(), self),
                    ErasedHook::Database(_) | ErasedHook::Before(..) => Ok(()),
                })
            });
            self.nodes[i].result = Some(result);
            outcome?;
        }
        Ok(self.nodes.len() > before)
    }

    /// Writes every pending node, round after round, then closes broken cycles.
    async fn insert_pending<DB: Dialect>(&mut self, conn: &mut DB::Connection) -> Result<()> {
        loop {
            let batches = self.next_batches()?;
            if batches.is_empty() {
                break;
            }
            for batch in batches {
                self.insert_batch::<DB>(conn, &batch).await?;
            }
        }
        self.close_cycles::<DB>(conn).await
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
}

/// The references of a new node, their columns not located yet.
fn pending_refs(refs: Vec<Ref>) -> Vec<PendingRef> {
    refs.into_iter()
        .map(|r| PendingRef {
            index: usize::MAX,
            column: r.column,
            target: r.target,
            key: r.key,
            assign: r.assign,
            nullable: r.nullable,
            deferred: false,
        })
        .collect()
}

/// Finds each reference's column among the node's `columns`.
fn locate_refs(
    table: &'static Table,
    columns: &[&'static str],
    refs: &mut [PendingRef],
) -> Result<()> {
    for r in refs {
        let Some(index) = columns.iter().position(|c| *c == r.column) else {
            return Err(Error::Factory {
                factory: table.factory().to_string(),
                message: format!("the association's column `{}` is not a column", r.column),
            });
        };
        r.index = index;
    }
    Ok(())
}

/// A placeholder for the nodes a graph reserves before describing them.
static RESERVED: Table = Table::__new("<reserved>", None, "<reserved>", &[], &[]);

/// The strongly connected components of a small graph given as an adjacency matrix, in the
/// order Tarjan's algorithm completes them (a component before those that lead to it), each
/// with its nodes in ascending order.
fn strongly_connected(edges: &[Vec<bool>]) -> Vec<Vec<usize>> {
    let adjacency: Vec<Vec<usize>> = edges
        .iter()
        .map(|row| (0..row.len()).filter(|&w| row[w]).collect())
        .collect();
    let component = crate::schema::strongly_connected(&adjacency);
    let count = component.iter().max().map_or(0, |last| last + 1);
    let mut components = vec![Vec::new(); count];
    for (node, c) in component.into_iter().enumerate() {
        components[c].push(node);
    }
    components
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
