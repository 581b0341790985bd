//! Writing a plan's batches: the bulk `INSERT … RETURNING` of each, decoded into the models on
//! the backend's [`Dialect`], and the `UPDATE`s that close foreign-key cycles.

use sea_query::{Alias, Expr, Query};
use sea_query_sqlx::SqlxBinder;

use std::any::Any;
use std::sync::Arc;

use super::{ErasedHook, NodeState, Plan, locate_refs};
use crate::backend::{DecodeFn, Decoders, Dialect, KeyColumns};
use crate::context::state::{InsertEvent, StatementKind};
use crate::error::{Error, Result};
use crate::factory::Table;
use crate::factory::errors::{decode_error, statement_error};
use crate::factory::insert::{
    BulkInsert, bulk_insert_with, display_table, returning, rows_within, table_ref,
};

impl Plan {
    pub(super) async fn insert_batch<DB: Dialect>(
        &mut self,
        conn: &mut DB::Connection,
        nodes: &[usize],
    ) -> Result<()> {
        let Some(&first) = nodes.first() else {
            return Ok(());
        };
        self.run_before_hooks::<DB>(conn, nodes).await?;
        let table = self.nodes[first].table;
        let columns = self.nodes[first].columns.clone();
        for chunk in nodes.chunks(rows_within(DB::MAX_BIND_PARAMETERS, columns.len())) {
            let locate = chunk
                .iter()
                .any(|&i| self.nodes[i].refs.iter().any(|r| r.deferred));
            let mut rows = Vec::with_capacity(chunk.len());
            for &i in chunk {
                rows.push(self.resolved_values(i)?);
            }
            let (generated, unique) = key_columns(table);
            // Kept for a backend that finds the rows again by the key the model wrote.
            let written =
                (DB::READS_BACK_WRITTEN_KEYS && generated.is_empty()).then(|| rows.clone());
            let BulkInsert {
                mut statement,
                arrays,
            } = bulk_insert_with(table, &columns, rows, DB::ARRAY_COLUMNS).map_err(|e| {
                Error::Factory {
                    factory: table.factory().to_string(),
                    message: format!("building the INSERT: {e}"),
                }
            })?;
            let keys = KeyColumns {
                table: table.name(),
                generated: &generated,
                unique: &unique,
            };
            if locate && !DB::can_locate(&keys) {
                return Err(Error::Factory {
                    factory: table.factory().to_string(),
                    message: format!(
                        "closing a foreign-key cycle through {} means finding its rows again \
                         after the INSERT, by its key: mark its AUTO_INCREMENT key \
                         #[factory(generated)] (or a unique column #[factory(unique)]), or \
                         create one side first and set the key that closes the cycle with an \
                         UPDATE",
                        display_table(table),
                    ),
                });
            }
            statement.returning(returning::<DB>(table, locate));
            let (sql, values) = statement.build_sqlx(DB::QueryBuilder::default());
            let values = match arrays {
                Some(arrays) => DB::bind_arrays(arrays).map_err(|e| Error::Factory {
                    factory: table.factory().to_string(),
                    message: format!("binding the columns as arrays: {e}"),
                })?,
                None => DB::arguments(values),
            };
            let shape = crate::backend::InsertShape {
                schema: table.schema(),
                table: table.name(),
                columns: table.columns().iter().map(|c| c.name()).collect(),
                generated: generated.clone(),
                rows: chunk.len(),
                written: written.as_deref().map(|rows| (columns.as_slice(), rows)),
            };
            let rows = DB::insert_returning(&mut *conn, sql, values, shape)
                .await
                .map_err(|e| statement_error::<DB>(e, table))?;
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
                let decode = decode_with::<DB>(&node.decode, table)?;
                node.result = Some(decode(row).map_err(|e| decode_error(e, table))?);
                if locate {
                    node.location =
                        Some(DB::read_locator(row, &keys).map_err(|e| decode_error(e, table))?);
                }
                node.state = NodeState::Inserted;
            }
        }
        Ok(())
    }

    /// Runs the `before_create_db` hooks of the batch's rows kept as models, in the order the
    /// rows were planned: the foreign keys of parents written earlier are set first, and the
    /// model becomes the node's columns and values after its hooks.
    async fn run_before_hooks<DB: Dialect>(
        &mut self,
        conn: &mut DB::Connection,
        nodes: &[usize],
    ) -> Result<()> {
        for &i in nodes {
            let Some((mut model, attributes)) = self.nodes[i].model.take() else {
                continue;
            };
            let table = self.nodes[i].table;
            for r in self.nodes[i].refs.iter().filter(|r| !r.deferred) {
                let Some(assign) = r.assign else {
                    continue;
                };
                let parent = self.nodes[r.target.0].result.as_deref();
                if parent
                    .and_then(|parent| assign(model.as_mut(), parent))
                    .is_none()
                {
                    return Err(Error::Factory {
                        factory: table.factory().to_string(),
                        message: format!(
                            "the key for column `{}` could not be read from the {} row it \
                             references",
                            r.column,
                            display_table(self.nodes[r.target.0].table)
                        ),
                    });
                }
            }
            let (before, rest): (Vec<ErasedHook>, Vec<ErasedHook>) =
                std::mem::take(&mut self.nodes[i].hooks)
                    .into_iter()
                    .partition(|h| matches!(h, ErasedHook::Before(..)));
            self.nodes[i].hooks = rest;
            for hook in &before {
                if let ErasedHook::Before(hook, _) = hook {
                    let erased: &mut (dyn Any + Send) = &mut *conn;
                    let fut = hook(model.as_mut(), erased);
                    Arc::clone(&self.ctx).scope(fut).await?;
                }
            }
            let Some(attributes) = attributes(model) else {
                return Err(Error::Factory {
                    factory: table.factory().to_string(),
                    message: "a row kept for its before_create_db hooks is of another model"
                        .to_string(),
                });
            };
            let node = &mut self.nodes[i];
            for (column, value) in attributes {
                node.columns.push(column);
                node.values.push(value);
            }
            // The keys set on the model are written as the hooks left them (a hook may point the
            // row at another parent); a reference deferred to break a cycle is set later.
            node.refs.retain(|r| r.deferred || r.assign.is_none());
            locate_refs(table, &node.columns, &mut node.refs)?;
        }
        Ok(())
    }

    /// Sets the references written as NULL to break cycles, now that their targets exist.
    pub(super) async fn close_cycles<DB: Dialect>(
        &mut self,
        conn: &mut DB::Connection,
    ) -> Result<()> {
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
            let Some(location) = node.location.clone() else {
                return Err(Error::Factory {
                    factory: table.factory().to_string(),
                    message: "the row to complete after a cycle cannot be found".to_string(),
                });
            };
            let mut update = Query::update();
            update
                .table(table_ref(table))
                .values(sets)
                .cond_where(DB::at_locator(&location));
            if DB::UPDATE_RETURNING {
                update.returning(returning::<DB>(table, false));
            } else {
                // Found by its key columns: one row, however the location was made.
                update.limit(1);
            }
            let (sql, values) = update.build_sqlx(DB::QueryBuilder::default());
            let updated = DB::fetch_all(&mut *conn, sql, DB::arguments(values)).await;
            let rows = if DB::UPDATE_RETURNING {
                updated
            } else {
                // Read the row again where it is.
                let mut select = Query::select();
                select
                    .exprs(
                        table
                            .columns()
                            .iter()
                            .map(|c| Expr::col(Alias::new(c.name()))),
                    )
                    .from(table_ref(table))
                    .cond_where(DB::at_locator(&location));
                let (sql, values) = select.build_sqlx(DB::QueryBuilder::default());
                match updated {
                    Ok(_) => DB::fetch_all(&mut *conn, sql, DB::arguments(values)).await,
                    Err(e) => Err(e),
                }
            };
            let row = rows
                .and_then(|rows| rows.into_iter().next().ok_or(sqlx::Error::RowNotFound))
                .map_err(|e| statement_error::<DB>(e, table))?;
            self.record(table, 0, StatementKind::Update);
            let node = &mut self.nodes[i];
            let decode = decode_with::<DB>(&node.decode, table)?;
            node.result = Some(decode(&row).map_err(|e| decode_error(e, table))?);
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

/// The backend `DB`'s decoder of a node of `table`: its model must implement `sqlx::FromRow` for
/// the backend's rows.
pub(super) fn decode_with<DB: Dialect>(
    decoders: &Decoders,
    table: &'static Table,
) -> Result<DecodeFn<DB>> {
    DB::decoder(decoders).ok_or_else(|| Error::Factory {
        factory: table.factory().to_string(),
        message: format!(
            "creating it on {} needs `sqlx::FromRow` for that backend's rows: derive \
             `sqlx::FromRow` for the model of table {}",
            std::any::type_name::<DB>(),
            display_table(table)
        ),
    })
}

/// The model's `#[factory(generated)]` and `#[factory(unique)]` columns of `table`.
fn key_columns(table: &Table) -> (Vec<&'static str>, Vec<&'static str>) {
    let of = |wanted: fn(&crate::factory::Column) -> bool| {
        table
            .columns()
            .iter()
            .filter(|c| wanted(c))
            .map(|c| c.name())
            .collect()
    };
    (of(|c| c.is_generated()), of(|c| c.is_unique()))
}
