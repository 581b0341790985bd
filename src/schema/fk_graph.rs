//! The foreign-key graph: strongly connected components (cycles) and a deletion order.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{ForeignKey, Schema, TableKind};
use crate::sql::QualifiedName;

/// One foreign key seen as an edge of the graph, child → parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FkEdge {
    /// The constraint's name.
    pub name: String,
    /// The referencing (child) table.
    pub from: QualifiedName,
    /// The referenced (parent) table.
    pub to: QualifiedName,
    /// Every referencing column is nullable.
    pub nullable: bool,
    /// The constraint is `DEFERRABLE`.
    pub deferrable: bool,
}

impl FkEdge {
    fn of(fk: &ForeignKey, from: QualifiedName, to: QualifiedName) -> Self {
        Self {
            name: fk.name.clone(),
            from,
            to,
            nullable: fk.nullable,
            deferrable: fk.deferrable,
        }
    }

    /// The cycle can be broken at this edge: rows can be written with it unset (nullable) or
    /// with its check postponed to commit (deferrable).
    pub fn breakable(&self) -> bool {
        self.nullable || self.deferrable
    }
}

/// A set of tables that reference each other, directly or through others (or a table that
/// references itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    /// The foreign keys inside the cycle.
    pub edges: Vec<FkEdge>,
}

impl Cycle {
    /// The edges at which the cycle can be broken.
    pub fn breakable_edges(&self) -> impl Iterator<Item = &FkEdge> {
        self.edges.iter().filter(|e| e.breakable())
    }

    /// Whether rows of the cycle can be written table by table at all (at least one edge can be
    /// broken). A cycle of NOT NULL, non-deferrable keys can only be filled in one statement.
    pub fn is_breakable(&self) -> bool {
        self.breakable_edges().next().is_some()
    }

    /// Whether the cycle is a table referencing itself.
    pub fn is_self_reference(&self) -> bool {
        self.edges.iter().all(|e| e.from == e.to)
    }
}

/// One step of a deletion order: a table, or the tables of a cycle, to empty together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletionStep {
    /// The tables of this step (one, unless it is a multi-table cycle), sorted by name.
    pub tables: Vec<QualifiedName>,
    /// The cycle these tables form, if any (a self-reference is a one-table cycle).
    pub cycle: Option<Cycle>,
}

/// Tables in an order that deletes children before parents; tables of a cycle share a step.
///
/// Partitions do not appear: their rows are deleted through their partitioned parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletionOrder {
    steps: Vec<DeletionStep>,
}

impl DeletionOrder {
    /// The steps, children first.
    pub fn steps(&self) -> &[DeletionStep] {
        &self.steps
    }

    /// Every table, children first.
    pub fn tables(&self) -> impl Iterator<Item = &QualifiedName> {
        self.steps.iter().flat_map(|s| s.tables.iter())
    }

    /// Every table, parents first: the order to insert in.
    pub fn insertion_order(&self) -> impl Iterator<Item = &QualifiedName> {
        self.steps.iter().rev().flat_map(|s| s.tables.iter())
    }

    /// The cycles (multi-table ones and self-references).
    pub fn cycles(&self) -> impl Iterator<Item = &Cycle> {
        self.steps.iter().filter_map(|s| s.cycle.as_ref())
    }

    /// The position of a table's step (its index in [`steps`](Self::steps)).
    pub fn position(&self, table: &QualifiedName) -> Option<usize> {
        self.steps.iter().position(|s| s.tables.contains(table))
    }
}

/// Computes the deletion order of `schema`'s top-level tables.
pub(super) fn deletion_order(schema: &Schema) -> DeletionOrder {
    // Nodes are the tables rows are addressed through; a key declared on a partition counts as
    // its parent's.
    let top = |name: &QualifiedName| -> QualifiedName {
        match schema.table(name).map(|t| &t.kind) {
            Some(TableKind::Partition { parent }) => parent.clone(),
            _ => name.clone(),
        }
    };
    let nodes: Vec<QualifiedName> = schema.top_level_tables().map(|t| t.name.clone()).collect();
    let index: HashMap<&QualifiedName, usize> =
        nodes.iter().enumerate().map(|(i, n)| (n, i)).collect();

    let mut edges: Vec<(usize, usize, FkEdge)> = Vec::new();
    for fk in &schema.foreign_keys {
        let (from, to) = (top(&fk.table), top(&fk.references));
        if let (Some(&a), Some(&b)) = (index.get(&from), index.get(&to)) {
            edges.push((a, b, FkEdge::of(fk, from, to)));
        }
    }
    let mut adjacency = vec![Vec::new(); nodes.len()];
    for (a, b, _) in &edges {
        adjacency[*a].push(*b);
    }

    let component = strongly_connected(&adjacency);
    let count = component.iter().copied().max().map_or(0, |m| m + 1);

    // Members, internal edges and parent components of each component.
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (node, c) in component.iter().enumerate() {
        members[*c].push(node);
    }
    let mut internal: Vec<Vec<FkEdge>> = vec![Vec::new(); count];
    let mut parents: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); count];
    let mut children_count = vec![0usize; count];
    for (a, b, edge) in &edges {
        let (ca, cb) = (component[*a], component[*b]);
        if ca == cb {
            internal[ca].push(edge.clone());
        } else if parents[ca].insert(cb) {
            children_count[cb] += 1;
        }
    }

    // Kahn's algorithm, children first; ties broken by the smallest table name, so the order
    // is stable.
    let key = |c: usize| members[c].iter().map(|n| &nodes[*n]).min().cloned();
    let mut ready: BTreeMap<Option<QualifiedName>, usize> = BTreeMap::new();
    for (c, _) in children_count.iter().enumerate().filter(|(_, n)| **n == 0) {
        ready.insert(key(c), c);
    }
    let mut steps = Vec::with_capacity(count);
    while let Some((_, c)) = ready.pop_first() {
        let mut tables: Vec<QualifiedName> = members[c].iter().map(|n| nodes[*n].clone()).collect();
        tables.sort();
        let mut cycle_edges = std::mem::take(&mut internal[c]);
        cycle_edges.sort_by(|x, y| (&x.from, &x.name).cmp(&(&y.from, &y.name)));
        steps.push(DeletionStep {
            tables,
            cycle: (!cycle_edges.is_empty()).then_some(Cycle { edges: cycle_edges }),
        });
        for &p in &parents[c] {
            children_count[p] -= 1;
            if children_count[p] == 0 {
                ready.insert(key(p), p);
            }
        }
    }
    DeletionOrder { steps }
}

/// Tarjan's algorithm, iterative: the component index of every node, numbered in the order the
/// components complete (a component before those that lead to it).
pub(crate) fn strongly_connected(adjacency: &[Vec<usize>]) -> Vec<usize> {
    const UNVISITED: usize = usize::MAX;
    let n = adjacency.len();
    let mut index = vec![UNVISITED; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut component = vec![UNVISITED; n];
    let mut next_index = 0;
    let mut next_component = 0;

    for root in 0..n {
        if index[root] != UNVISITED {
            continue;
        }
        // (node, position in its adjacency list)
        let mut work = vec![(root, 0usize)];
        while let Some(&mut (v, ref mut i)) = work.last_mut() {
            if *i == 0 && index[v] == UNVISITED {
                index[v] = next_index;
                low[v] = next_index;
                next_index += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = adjacency[v].get(*i) {
                *i += 1;
                if index[w] == UNVISITED {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component[w] = next_component;
                    if w == v {
                        break;
                    }
                }
                next_component += 1;
            }
        }
    }
    component
}

#[cfg(test)]
mod tests {
    use super::strongly_connected;

    #[test]
    fn finds_components() {
        // 0 → 1 → 2 → 1, 3 → 3, 4 alone
        let adj = vec![vec![1], vec![2], vec![1], vec![3], vec![]];
        let c = strongly_connected(&adj);
        assert_eq!(c[1], c[2]);
        assert_ne!(c[0], c[1]);
        assert_ne!(c[3], c[4]);
        let distinct: std::collections::HashSet<_> = c.iter().collect();
        assert_eq!(distinct.len(), 4);
    }
}
