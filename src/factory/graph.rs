//! [`Graph`]: an object graph described node by node, rows that reference each other (a
//! foreign-key cycle included), created in one call.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::backend::Dialect;
use crate::error::{Error, Result};
use crate::factory::create::{Target, write};
use crate::factory::plan::{NodeId, Plan, model_decoders};
use crate::factory::{Create, Factory, Node};

/// Rows described one by one, that may reference each other through their `belongs_to` setters,
/// created together: one `INSERT` per table (per 65,535 parameters) in foreign-key order.
///
/// A graph can close a foreign-key cycle, such as a board whose default column is one of its
/// own columns: the reference that can be NULL (an `Option` field) is inserted as NULL, and set
/// by an `UPDATE` once its target exists; the returned rows show the final values.
///
/// ```no_run
/// # async fn demo(db: seedbed::TestDb) -> Result<(), seedbed::Error> {
/// use seedbed::factory::Graph;
///
/// #[derive(Debug, Clone, sqlx::FromRow, seedbed::Factory)]
/// #[factory(table = "boards")]
/// pub struct Board {
///     #[factory(generated)]
///     pub id: i64,
///     pub project_id: uuid::Uuid,
///     #[factory(default = "Sprint")]
///     pub name: String,
///     #[factory(belongs_to = BoardColumn)]
///     pub default_column_id: Option<i64>,
/// }
///
/// #[derive(Debug, Clone, sqlx::FromRow, seedbed::Factory)]
/// #[factory(table = "board_columns")]
/// pub struct BoardColumn {
///     #[factory(generated)]
///     pub id: i64,
///     #[factory(belongs_to = Board)]
///     pub board_id: i64,
///     #[factory(default = "Todo")]
///     pub name: String,
///     #[factory(sequence = |n| n as i32)]
///     pub position: i32,
/// }
///
/// let mut graph = Graph::new();
/// let board = graph.add(Board::factory().project_id(uuid::Uuid::nil()));
/// let todo = graph.add(BoardColumn::factory().board(board));
/// graph.update(&board, |b| b.default_column(todo));
/// let created = graph.create(&db).await?;
/// let (board, todo) = (created.get(&board).unwrap(), created.get(&todo).unwrap());
/// assert_eq!(board.default_column_id, Some(todo.id));
/// # Ok(()) }
/// ```
pub struct Graph {
    id: u64,
    entries: Vec<Entry>,
}

struct Entry {
    builder: Option<Box<dyn Any + Send>>,
    plan: fn(Box<dyn Any + Send>, &mut Plan) -> Result<NodeId>,
    factory: &'static str,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field(
                "nodes",
                &self.entries.iter().map(|e| e.factory).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Default for Graph {
    fn default() -> Self {
        Self::new()
    }
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            entries: Vec::new(),
        }
    }

    /// Adds a row to create from `builder`; the node stands for it in other builders of the
    /// graph (`.author(node)`).
    pub fn add<B: Create>(&mut self, builder: B) -> Node<B::Model> {
        fn plan_entry<B: Create>(builder: Box<dyn Any + Send>, plan: &mut Plan) -> Result<NodeId> {
            match builder.downcast::<B>() {
                Ok(builder) => builder.__plan(plan, model_decoders::<B::Model>()),
                Err(_) => Err(Error::Factory {
                    factory: B::Model::TABLE.factory().to_string(),
                    message: "a graph entry holds another builder".to_string(),
                }),
            }
        }
        self.entries.push(Entry {
            builder: Some(Box::new(builder)),
            plan: plan_entry::<B>,
            factory: B::Model::TABLE.factory(),
        });
        Node::new(self.id, self.entries.len() - 1)
    }

    /// Changes the builder of `node` (to reference a node added after it, which closes a cycle).
    pub fn update<M: Factory>(
        &mut self,
        node: &Node<M>,
        change: impl FnOnce(M::Builder) -> M::Builder,
    ) -> &mut Self
    where
        M::Builder: Send + 'static,
    {
        if node.graph != self.id {
            return self;
        }
        if let Some(entry) = self.entries.get_mut(node.index) {
            let builder = entry
                .builder
                .take()
                .and_then(|b| b.downcast::<M::Builder>().ok());
            if let Some(builder) = builder {
                entry.builder = Some(Box::new(change(*builder)));
            }
        }
        self
    }

    /// How many rows were added (not counting the parents their associations will create).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no row was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Creates every row of the graph, and the parents their unset associations need.
    pub async fn create<'a, DB: Dialect, T: Target<'a, DB> + 'a>(self, db: T) -> Result<Created> {
        let Graph { id, entries } = self;
        let count = entries.len();
        let ctx = db.__context();
        let mut plan = Plan::for_graph(std::sync::Arc::clone(&ctx), id, count);
        ctx.sync_scope(|| -> Result<()> {
            for (index, entry) in entries.into_iter().enumerate() {
                let Some(builder) = entry.builder else {
                    return Err(Error::Factory {
                        factory: entry.factory.to_string(),
                        message: "a graph entry lost its builder".to_string(),
                    });
                };
                plan.set_slot(NodeId(index));
                (entry.plan)(builder, &mut plan)?;
            }
            Ok(())
        })?;
        write(db, &mut plan).await?;
        let results = (0..count).map(|i| plan.take_any(NodeId(i))).collect();
        Ok(Created { graph: id, results })
    }
}

/// The rows a [`Graph`] created, read by their nodes.
pub struct Created {
    graph: u64,
    results: Vec<Option<Box<dyn Any + Send>>>,
}

impl std::fmt::Debug for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Created")
            .field("rows", &self.results.len())
            .finish()
    }
}

impl Created {
    /// The created row of `node` (`None` for a node of another graph, or one taken).
    pub fn get<M: 'static>(&self, node: &Node<M>) -> Option<&M> {
        if node.graph != self.graph {
            return None;
        }
        self.results.get(node.index)?.as_ref()?.downcast_ref::<M>()
    }

    /// Takes the created row of `node` out.
    pub fn take<M: 'static>(&mut self, node: &Node<M>) -> Option<M> {
        if node.graph != self.graph {
            return None;
        }
        let boxed = self.results.get_mut(node.index)?.take()?;
        boxed.downcast::<M>().ok().map(|m| *m)
    }
}
