//! Associations: what a `belongs_to` field is set to ([`Assoc`]), graph nodes ([`Node`]), and the
//! children an `after_create` hook adds ([`Children`], [`Hooks`]).

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::backend::Decoders;
use crate::error::{Error, Result};
use crate::factory::plan::{
    AssignFn, ErasedHook, HookFuture, KeyFn, NodeId, Plan, Ref, model_decoders,
};
use crate::factory::{Create, Factory, FactoryBuilder};

/// The parent of a `belongs_to` association, when it is not given as a key or a created row:
/// a builder to create it from, or a node of the same [`Graph`](crate::factory::Graph).
///
/// Setters take `impl IntoAssoc<Parent>`: `.author(User::factory().admin())`,
/// `.board(&board_node)`.
pub enum Assoc<M: Factory> {
    /// Create the parent from this builder (build it, under `build()`).
    Factory(Box<M::Builder>),
    /// The parent is this node of the graph being created.
    Node(Node<M>),
}

impl<M: Factory> Clone for Assoc<M>
where
    M::Builder: Clone,
{
    fn clone(&self) -> Self {
        match self {
            Assoc::Factory(builder) => Assoc::Factory(builder.clone()),
            Assoc::Node(node) => Assoc::Node(*node),
        }
    }
}

impl<M: Factory> fmt::Debug for Assoc<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Assoc::Factory(_) => write!(f, "Assoc::Factory({})", M::TABLE.factory()),
            Assoc::Node(node) => write!(f, "Assoc::Node({node:?})"),
        }
    }
}

/// What a `belongs_to` setter accepts: a builder of the parent, or a graph node of it.
///
/// ```
/// use seedbed::factory::{Assoc, IntoAssoc};
///
/// #[derive(Debug, Clone, seedbed::Factory)]
/// #[factory(table = "users")]
/// pub struct User {
///     #[factory(generated)]
///     pub id: i64,
/// }
///
/// assert!(matches!(User::factory().into_assoc(), Assoc::Factory(_)));
/// ```
pub trait IntoAssoc<M: Factory> {
    /// The association.
    fn into_assoc(self) -> Assoc<M>;
}

impl<B: FactoryBuilder> IntoAssoc<B::Model> for B {
    fn into_assoc(self) -> Assoc<B::Model> {
        Assoc::Factory(Box::new(self))
    }
}

impl<M: Factory> IntoAssoc<M> for Node<M> {
    fn into_assoc(self) -> Assoc<M> {
        Assoc::Node(self)
    }
}

impl<M: Factory> IntoAssoc<M> for &Node<M> {
    fn into_assoc(self) -> Assoc<M> {
        Assoc::Node(*self)
    }
}

/// The parent of a polymorphic association (`#[factory(polymorphic(…))]`): a model of any of
/// the association's types, given as a builder or a graph node, with the name its type column
/// takes and how to read its key. `T` is the type of the key field. Made by the generated
/// setter; not something tests build by hand.
#[doc(hidden)]
pub struct Polymorphic<T> {
    type_name: &'static str,
    plan: PlanParent,
    /// Builds the parent in memory and reads its key (`None` for a graph node).
    build: Option<Arc<dyn Fn() -> T + Send + Sync>>,
    key: KeyFn,
    assign: AssignFn,
}

/// Plans the parent of a polymorphic association: its node.
type PlanParent = Arc<dyn Fn(&mut Plan) -> Result<NodeId> + Send + Sync>;

impl<T> Polymorphic<T> {
    /// The parent `assoc` of model `P`, whose type column takes `type_name`; `key_of` reads the
    /// key field's value from a `P`, `key` and `assign` read it from the created row (as a
    /// column value, and into the child's field).
    pub fn new<P>(
        type_name: &'static str,
        assoc: Assoc<P>,
        decoders: Option<Decoders>,
        key_of: fn(&P) -> T,
        key: KeyFn,
        assign: AssignFn,
    ) -> Self
    where
        T: 'static,
        P: Factory + 'static,
        P::Builder: Clone + Send + Sync + 'static,
    {
        let (plan, build): (PlanParent, _) = match assoc {
            Assoc::Factory(builder) => {
                let for_build = builder.clone();
                let build: Arc<dyn Fn() -> T + Send + Sync> =
                    Arc::new(move || key_of(&(*for_build).clone().build()));
                (
                    Arc::new(move |plan: &mut Plan| plan.plan((*builder).clone(), decoders)),
                    Some(build),
                )
            }
            Assoc::Node(node) => (Arc::new(move |plan: &mut Plan| plan.node(&node)), None),
        };
        Self {
            type_name,
            plan,
            build,
            key,
            assign,
        }
    }

    /// What the type column takes.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// Plans the parent, and the reference the child's key column takes from it.
    pub fn plan(&self, plan: &mut Plan, column: &'static str, nullable: bool) -> Result<Ref> {
        let node = (self.plan)(plan)?;
        Ok(Ref::new(column, node, self.key, nullable).assigning(self.assign))
    }

    /// The key of the parent built in memory (`None` for a graph node, whose key is known only
    /// once it is created).
    pub fn build_key(&self) -> Option<T> {
        self.build.as_ref().map(|build| build())
    }
}

impl<T> Clone for Polymorphic<T> {
    fn clone(&self) -> Self {
        Self {
            type_name: self.type_name,
            plan: Arc::clone(&self.plan),
            build: self.build.clone(),
            key: self.key,
            assign: self.assign,
        }
    }
}

impl<T> fmt::Debug for Polymorphic<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = if self.build.is_some() {
            "Factory"
        } else {
            "Node"
        };
        write!(f, "Polymorphic::{source}({})", self.type_name)
    }
}

/// A row of a [`Graph`](crate::factory::Graph), before it exists: pass it to the `belongs_to`
/// setters of other builders of the same graph, and read the created row with
/// [`Created::get`](crate::factory::Created::get).
pub struct Node<M> {
    pub(crate) graph: u64,
    pub(crate) index: usize,
    _model: PhantomData<fn() -> M>,
}

impl<M> Node<M> {
    pub(crate) fn new(graph: u64, index: usize) -> Self {
        Self {
            graph,
            index,
            _model: PhantomData,
        }
    }
}

impl<M> Clone for Node<M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M> Copy for Node<M> {}

impl<M> fmt::Debug for Node<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Node({}#{})", std::any::type_name::<M>(), self.index)
    }
}

/// What an `after_create` hook returns: rows to create once their parent exists. A builder, a
/// `Vec` of builders, `()`, an `Option` or a tuple of these.
///
/// The children of every row of a `create_list` are created together, one statement per table.
///
/// ```
/// use seedbed::factory::Children;
/// fn takes_children(_: impl Children) {}
/// takes_children(());
/// ```
pub trait Children {
    /// Adds the rows to the plan.
    fn plan_children(self, plan: &mut Plan) -> Result<()>;
}

impl<B: Create> Children for B {
    fn plan_children(self, plan: &mut Plan) -> Result<()> {
        plan.plan(self, Some(model_decoders::<B::Model>()))
            .map(|_| ())
    }
}

impl<B: Create> Children for Vec<B> {
    fn plan_children(self, plan: &mut Plan) -> Result<()> {
        for builder in self {
            plan.plan(builder, Some(model_decoders::<B::Model>()))?;
        }
        Ok(())
    }
}

impl Children for () {
    fn plan_children(self, _plan: &mut Plan) -> Result<()> {
        Ok(())
    }
}

impl<C: Children> Children for Option<C> {
    fn plan_children(self, plan: &mut Plan) -> Result<()> {
        match self {
            Some(children) => children.plan_children(plan),
            None => Ok(()),
        }
    }
}

macro_rules! tuple_children {
    ($($name:ident),+) => {
        impl<$($name: Children),+> Children for ($($name,)+) {
            #[allow(non_snake_case)]
            fn plan_children(self, plan: &mut Plan) -> Result<()> {
                let ($($name,)+) = self;
                $($name.plan_children(plan)?;)+
                Ok(())
            }
        }
    };
}
tuple_children!(A);
tuple_children!(A, B);
tuple_children!(A, B, C);
tuple_children!(A, B, C, D);

/// The error of a database hook written for the connection `C` and run on another backend's.
fn wrong_connection<C>(factory: &str, kind: &str) -> Error {
    Error::Factory {
        factory: factory.to_string(),
        message: format!(
            "this {kind} hook takes a {}, but this factory writes on another backend's connection: \
             write the hook for the connection of the database you create on",
            std::any::type_name::<C>()
        ),
    }
}

/// The hooks of a builder: `after_create` hooks receive the created row and return
/// [`Children`] to create with it; `after_create_db` and `before_create_db` hooks also receive
/// the connection.
pub struct Hooks<M> {
    list: Vec<ErasedHook>,
    _model: PhantomData<fn(&M)>,
}

impl<M> Default for Hooks<M> {
    fn default() -> Self {
        Self {
            list: Vec::new(),
            _model: PhantomData,
        }
    }
}

impl<M> Clone for Hooks<M> {
    fn clone(&self) -> Self {
        Self {
            list: self.list.clone(),
            _model: PhantomData,
        }
    }
}

impl<M> fmt::Debug for Hooks<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hooks({})", self.list.len())
    }
}

impl<M: Factory + 'static> Hooks<M> {
    /// Adds a hook.
    pub fn push<C: Children>(&mut self, hook: impl Fn(&M) -> C + Send + Sync + 'static) {
        self.list.push(ErasedHook::Children(Arc::new(
            move |row: &(dyn Any + Send), plan: &mut Plan| match row.downcast_ref::<M>() {
                Some(model) => hook(model).plan_children(plan),
                None => Err(Error::Factory {
                    factory: M::TABLE.factory().to_string(),
                    message: "an after_create hook received a row of another model".to_string(),
                }),
            },
        )));
    }

    /// Adds a hook that runs with the created row and the connection the rows are written on
    /// (`C`: `PgConnection`, `SqliteConnection`), inside the call's transaction.
    pub fn push_db<C, F>(&mut self, hook: F)
    where
        M: Sync,
        C: Any + Send,
        F: for<'c> Fn(&'c M, &'c mut C) -> HookFuture<'c> + Send + Sync + 'static,
    {
        let hook = Arc::new(hook);
        self.list.push(ErasedHook::Database(Arc::new(
            move |row: &(dyn Any + Send), conn: &mut (dyn Any + Send)| -> HookFuture<'_> {
                let factory = M::TABLE.factory();
                let Some(model) = row.downcast_ref::<M>() else {
                    return Box::pin(std::future::ready(Err(Error::Factory {
                        factory: factory.to_string(),
                        message: "an after_create_db hook received a row of another model"
                            .to_string(),
                    })));
                };
                let Some(conn) = conn.downcast_mut::<C>() else {
                    return Box::pin(std::future::ready(Err(wrong_connection::<C>(
                        factory,
                        "after_create_db",
                    ))));
                };
                hook(model, conn)
            },
        )));
    }

    /// Adds a hook that runs with the built row, its foreign keys set, and the connection the
    /// rows are written on (`C`), inside the call's transaction, right before the row's
    /// `INSERT`: what it changes in the row is what is written.
    pub fn push_before_db<C, F>(&mut self, hook: F)
    where
        M: Send,
        C: Any + Send,
        F: for<'c> Fn(&'c mut M, &'c mut C) -> HookFuture<'c> + Send + Sync + 'static,
    {
        let hook = Arc::new(hook);
        self.list.push(ErasedHook::Before(
            Arc::new(
                move |row: &mut (dyn Any + Send), conn: &mut (dyn Any + Send)| -> HookFuture<'_> {
                    let factory = M::TABLE.factory();
                    let Some(model) = row.downcast_mut::<M>() else {
                        return Box::pin(std::future::ready(Err(Error::Factory {
                            factory: factory.to_string(),
                            message: "a before_create_db hook received a row of another model"
                                .to_string(),
                        })));
                    };
                    let Some(conn) = conn.downcast_mut::<C>() else {
                        return Box::pin(std::future::ready(Err(wrong_connection::<C>(
                            factory,
                            "before_create_db",
                        ))));
                    };
                    hook(model, conn)
                },
            ),
            |model| {
                model
                    .downcast::<M>()
                    .map(|model| model as Box<dyn Any + Send>)
            },
        ));
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The hooks, type-erased, for the plan.
    pub fn into_erased(self) -> Vec<ErasedHook> {
        self.list
    }
}
