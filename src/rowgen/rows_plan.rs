//! How the row generator writes each table: the columns it fills and how, the parents a row
//! needs, and the order tables can be written in.

use super::*;

/// Plans one table, or says why it cannot be filled.
pub(crate) fn plan_table(
    cx: &Context<'_>,
    table: &Table,
) -> std::result::Result<TablePlan, Skipped> {
    let skip = |column: Option<&str>, constraint: Option<&str>, reason: String| Skipped {
        table: table.name.clone(),
        column: column.map(str::to_string),
        constraint: constraint.map(str::to_string),
        reason,
    };
    let column_names: HashSet<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    let nullable = |c: &str| table.column(c).is_some_and(|c| !c.not_null);
    let mut rules = TableRules::default();
    for check in &table.checks {
        rules.add_check(
            &check.name,
            &check.definition,
            &|n| column_names.contains(n).then(|| n.to_string()),
            &nullable,
        );
    }
    // Domains: their checks apply to the column (VALUE), their base type is what is generated.
    let mut base_types: HashMap<&str, String> = HashMap::new();
    for c in &table.columns {
        let mut base = c.type_name.clone();
        if c.type_kind == 'd' {
            let mut key = (c.type_schema.clone(), c.type_name.clone());
            for _ in 0..16 {
                let Some(d) = cx.domains.get(&key) else {
                    break;
                };
                for (name, def) in &d.checks {
                    let col = c.name.clone();
                    rules.add_check(
                        name,
                        def,
                        &|n| (n == "VALUE").then(|| col.clone()),
                        &nullable,
                    );
                }
                base = d.base.1.clone();
                if !d.base_is_domain {
                    break;
                }
                key = d.base.clone();
            }
        }
        base_types.insert(&c.name, base);
    }

    // Foreign keys.
    let prefilled = |t: &QualifiedName| cx.prefilled.get(t).is_some_and(|r| !r.is_empty());
    let mut fks: Vec<FkPlan> = Vec::new();
    let mut fk_columns: HashMap<String, String> = HashMap::new();
    let declared: Vec<&ForeignKey> = cx.schema.foreign_keys_of(&table.name).collect();
    for fk in declared {
        let cols: Vec<&crate::schema::Column> =
            fk.columns.iter().filter_map(|c| table.column(c)).collect();
        if cols.len() != fk.columns.len() {
            continue;
        }
        let all_defaulted = cols
            .iter()
            .all(|c| !matches!(c.default, ColumnDefault::None));
        if cols.iter().any(|c| {
            matches!(
                c.default,
                ColumnDefault::Generated(_) | ColumnDefault::IdentityAlways
            )
        }) || (all_defaulted && prefilled(&fk.references))
        {
            // Written by the database (a default pointing at a lookup row).
            continue;
        }
        if let Some(c) = fk.columns.iter().find(|c| fk_columns.contains_key(*c)) {
            if fk.nullable {
                // MATCH SIMPLE: a key with a NULL column is not checked; leave this one out.
                continue;
            }
            return Err(skip(
                Some(c),
                Some(&fk.name),
                format!(
                    "the column is in two foreign keys ({} and {}), which the generator cannot \
                     satisfy together",
                    fk_columns.get(c).cloned().unwrap_or_default(),
                    fk.name
                ),
            ));
        }
        let self_reference = fk.references == table.name;
        if self_reference && !fk.nullable {
            return Err(skip(
                fk.columns.first().map(String::as_str),
                Some(&fk.name),
                "a NOT NULL self-reference: the first row would need a parent that cannot exist \
                 yet"
                .into(),
            ));
        }
        for c in &fk.columns {
            fk_columns.insert(c.clone(), fk.name.clone());
        }
        fks.push(FkPlan {
            name: fk.name.clone(),
            columns: fk.columns.clone(),
            parent: fk.references.clone(),
            parent_columns: fk.referenced_columns.clone(),
            required: !fk.nullable,
            self_reference,
        });
    }
    let requires: Vec<QualifiedName> = fks
        .iter()
        .filter(|fk| fk.required && !fk.self_reference && !prefilled(&fk.parent))
        .map(|fk| fk.parent.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();

    // Which columns are written, and how.
    let unique_columns: HashSet<&str> = table
        .primary_key
        .iter()
        .chain(table.unique_keys.iter().flat_map(|k| k.columns.iter()))
        .map(String::as_str)
        .collect();
    let in_relation: HashSet<&str> = rules
        .relations
        .iter()
        .flat_map(|r| [r.greater.as_str(), r.lesser.as_str()])
        .collect();
    let mut columns = Vec::new();
    for c in &table.columns {
        if fk_columns.contains_key(&c.name) {
            continue;
        }
        let r = rules.column(&c.name).cloned().unwrap_or_default();
        let unique = unique_columns.contains(c.name.as_str());
        let default_is_unique = match &c.default {
            ColumnDefault::IdentityByDefault | ColumnDefault::IdentityAlways => true,
            ColumnDefault::Expr(e) => {
                let e = e.to_ascii_lowercase();
                e.contains("nextval(") || e.contains("uuid")
            }
            _ => false,
        };
        let write = match &c.default {
            ColumnDefault::Generated(_) | ColumnDefault::IdentityAlways => false,
            ColumnDefault::IdentityByDefault => false,
            ColumnDefault::Expr(_) => {
                (unique && !default_is_unique) || in_relation.contains(c.name.as_str())
            }
            ColumnDefault::None => {
                c.not_null || (r.null != Some(true) && r.opaque.is_empty()) || r.null == Some(false)
            }
        };
        if !write {
            continue;
        }
        if r.null == Some(true) {
            if c.not_null {
                return Err(skip(
                    Some(&c.name),
                    None,
                    "its checks want it NULL, but it is NOT NULL".into(),
                ));
            }
            continue;
        }
        let base = base_types.get(c.name.as_str()).cloned().unwrap_or_default();
        let existing = cx
            .existing_max
            .get(&(table.name.clone(), c.name.clone()))
            .copied();
        match Gen::for_column(c, &base, &r, unique, existing) {
            Ok(values) => columns.push(ColumnPlan {
                name: c.name.clone(),
                values,
                unique,
            }),
            Err(reason) if c.not_null && matches!(c.default, ColumnDefault::None) => {
                let constraint = r.opaque.first().cloned();
                return Err(skip(
                    Some(&c.name),
                    constraint.as_deref(),
                    format!("{reason} (column type {})", c.sql_type),
                ));
            }
            // A nullable column, or one with a default: left to the database.
            Err(_) => {}
        }
    }
    let position = |name: &str| columns.iter().position(|c: &ColumnPlan| c.name == name);
    let relations = rules
        .relations
        .iter()
        .filter_map(|r| Some((position(&r.greater)?, position(&r.lesser)?, r.strict)))
        .collect();
    let fk_groups = table
        .unique_keys
        .iter()
        .map(|k| &k.columns)
        .chain(std::iter::once(&table.primary_key).filter(|k| !k.is_empty()))
        .filter(|cols| cols.iter().all(|c| fk_columns.contains_key(c)))
        .map(|cols| {
            let mut group: Vec<usize> = fks
                .iter()
                .enumerate()
                .filter(|(_, fk)| fk.columns.iter().any(|c| cols.contains(c)))
                .map(|(j, _)| j)
                .collect();
            group.dedup();
            group
        })
        .collect();
    Ok(TablePlan {
        name: table.name.clone(),
        columns,
        fks,
        relations,
        fk_groups,
        requires,
    })
}

/// Orders tables parents first (required parents strictly, the rest as the foreign-key graph's
/// insertion order has them); tables on a cycle of NOT NULL keys are skipped.
pub(crate) fn order(
    schema: &Schema,
    planned: Vec<TablePlan>,
    skipped: &mut Vec<Skipped>,
) -> Vec<TablePlan> {
    let deletion = schema.deletion_order();
    let rank: HashMap<&QualifiedName, usize> = deletion
        .insertion_order()
        .enumerate()
        .map(|(i, t)| (t, i))
        .collect();
    let mut planned = planned;
    planned.sort_by_key(|t| rank.get(&t.name).copied().unwrap_or(usize::MAX));

    // Drop tables that need a table that could not be planned, until nothing changes.
    loop {
        let present: HashSet<QualifiedName> = planned.iter().map(|t| t.name.clone()).collect();
        let before = planned.len();
        let mut kept = Vec::with_capacity(planned.len());
        for t in planned {
            match t.requires.iter().find(|p| !present.contains(*p)) {
                Some(p) => {
                    let why = if skipped.iter().any(|s| &s.table == p) {
                        "which is skipped"
                    } else {
                        "which is not among the tables read"
                    };
                    skipped.push(Skipped {
                        table: t.name.clone(),
                        column: None,
                        constraint: None,
                        reason: format!("its rows need rows of {}, {why}", p.unquoted()),
                    });
                }
                None => kept.push(t),
            }
        }
        planned = kept;
        if planned.len() == before {
            break;
        }
    }

    // Kahn's algorithm over required parents, by insertion rank.
    let mut out: Vec<TablePlan> = Vec::with_capacity(planned.len());
    let mut done: HashSet<QualifiedName> = HashSet::new();
    let mut rest = planned;
    loop {
        let ready = rest
            .iter()
            .position(|t| t.requires.iter().all(|p| done.contains(p)));
        match ready {
            Some(i) => {
                let t = rest.remove(i);
                done.insert(t.name.clone());
                out.push(t);
            }
            None => break,
        }
    }
    let stuck: HashSet<QualifiedName> = rest.iter().map(|t| t.name.clone()).collect();
    for t in rest {
        let keys: Vec<&str> = t
            .fks
            .iter()
            .filter(|fk| fk.required && stuck.contains(&fk.parent))
            .map(|fk| fk.name.as_str())
            .collect();
        skipped.push(Skipped {
            table: t.name.clone(),
            column: None,
            constraint: keys.first().map(|k| k.to_string()),
            reason: format!(
                "it is on a foreign-key cycle of NOT NULL keys ({}): no table of the cycle can be \
                 written first",
                keys.join(", ")
            ),
        });
    }
    out
}
