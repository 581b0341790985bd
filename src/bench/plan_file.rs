//! The row plan as a file: `seedbed bench` plans rows once, and every test process of its
//! process-per-test runs reads the plan instead of introspecting the schema again, as a real
//! test binary carries its factories compiled in.
//!
//! The file is JSON, written and read by the same build of seedbed (it says which format it
//! is, and a file of another format is refused); it is an implementation detail of
//! `seedbed bench`, not an interchange format.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicI64, AtomicU64};

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::types::JsonValue;

use crate::error::{Error, Result};
use crate::rowgen::pattern::Regex;
use crate::rowgen::rows::{ColumnPlan, FkPlan, RowPlan, Skipped, TablePlan};
use crate::rowgen::values::Gen;
use crate::sql::QualifiedName;

/// What the file says it is.
const FORMAT: &str = "seedbed-row-plan/1";

fn object<const N: usize>(fields: [(&str, JsonValue); N]) -> JsonValue {
    JsonValue::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

fn strings(items: &[String]) -> JsonValue {
    JsonValue::Array(items.iter().cloned().map(JsonValue::String).collect())
}

fn name_to_json(n: &QualifiedName) -> JsonValue {
    JsonValue::Array(vec![
        JsonValue::String(n.schema.clone()),
        JsonValue::String(n.name.clone()),
    ])
}

/// Floats as text, which Rust prints and parses back exactly.
fn float_to_json(x: f64) -> JsonValue {
    JsonValue::String(x.to_string())
}

fn opt_usize(n: Option<usize>) -> JsonValue {
    n.map_or(JsonValue::Null, JsonValue::from)
}

fn gen_to_json(g: &Gen) -> JsonValue {
    let kind = |k: &str| ("kind", JsonValue::String(k.into()));
    match g {
        Gen::Int {
            lo,
            hi,
            unique,
            step,
        } => object([
            kind("int"),
            ("lo", JsonValue::from(*lo)),
            ("hi", JsonValue::from(*hi)),
            (
                "next",
                unique
                    .as_ref()
                    .map_or(JsonValue::Null, |n| JsonValue::from(n.load(Relaxed))),
            ),
            ("step", JsonValue::from(*step)),
        ]),
        Gen::Decimal { lo, hi, scale } => object([
            kind("decimal"),
            ("lo", float_to_json(*lo)),
            ("hi", float_to_json(*hi)),
            ("scale", JsonValue::from(*scale)),
        ]),
        Gen::Float { lo, hi } => object([
            kind("float"),
            ("lo", float_to_json(*lo)),
            ("hi", float_to_json(*hi)),
        ]),
        Gen::Text { min_len, max_len } => object([
            kind("text"),
            ("min_len", JsonValue::from(*min_len)),
            ("max_len", opt_usize(*max_len)),
        ]),
        Gen::OneOf(values) => object([kind("one_of"), ("values", strings(values))]),
        Gen::Regex {
            re,
            min_len,
            max_len,
            unique,
        } => object([
            kind("regex"),
            ("re", re.to_json()),
            ("min_len", JsonValue::from(*min_len)),
            ("max_len", opt_usize(*max_len)),
            ("unique", JsonValue::Bool(*unique)),
        ]),
        Gen::Like { pattern, max_len } => object([
            kind("like"),
            ("pattern", JsonValue::String(pattern.clone())),
            ("max_len", opt_usize(*max_len)),
        ]),
        Gen::Date { lo, hi } => object([
            kind("date"),
            ("lo", JsonValue::String(lo.to_string())),
            ("hi", JsonValue::String(hi.to_string())),
        ]),
        Gen::Timestamp { lo, hi } => object([
            kind("timestamp"),
            ("lo", JsonValue::String(lo.to_rfc3339())),
            ("hi", JsonValue::String(hi.to_rfc3339())),
        ]),
        Gen::Bits(n) => object([kind("bits"), ("n", JsonValue::from(*n))]),
        Gen::Range(range) => object([kind("range"), ("range", JsonValue::String((*range).into()))]),
        Gen::Array(element) => object([kind("array"), ("element", gen_to_json(element))]),
        Gen::Bool => object([kind("bool")]),
        Gen::Uuid => object([kind("uuid")]),
        Gen::Time => object([kind("time")]),
        Gen::Interval => object([kind("interval")]),
        Gen::Json => object([kind("json")]),
        Gen::Bytea => object([kind("bytea")]),
        Gen::Inet => object([kind("inet")]),
        Gen::Cidr => object([kind("cidr")]),
        Gen::MacAddr => object([kind("macaddr")]),
        Gen::TsVector => object([kind("tsvector")]),
        Gen::Xml => object([kind("xml")]),
        Gen::EmptyArray => object([kind("empty_array")]),
    }
}

fn table_to_json(t: &TablePlan) -> JsonValue {
    let columns = t
        .columns
        .iter()
        .map(|c| {
            object([
                ("name", JsonValue::String(c.name.clone())),
                ("unique", JsonValue::Bool(c.unique)),
                ("values", gen_to_json(&c.values)),
            ])
        })
        .collect();
    let fks = t
        .fks
        .iter()
        .map(|fk| {
            object([
                ("name", JsonValue::String(fk.name.clone())),
                ("columns", strings(&fk.columns)),
                ("parent", name_to_json(&fk.parent)),
                ("parent_columns", strings(&fk.parent_columns)),
                ("required", JsonValue::Bool(fk.required)),
                ("self_reference", JsonValue::Bool(fk.self_reference)),
            ])
        })
        .collect();
    let relations = t
        .relations
        .iter()
        .map(|(g, l, strict)| {
            JsonValue::Array(vec![
                JsonValue::from(*g),
                JsonValue::from(*l),
                JsonValue::Bool(*strict),
            ])
        })
        .collect();
    let groups = t
        .fk_groups
        .iter()
        .map(|g| JsonValue::Array(g.iter().map(|&j| JsonValue::from(j)).collect()))
        .collect();
    object([
        ("name", name_to_json(&t.name)),
        ("columns", JsonValue::Array(columns)),
        ("fks", JsonValue::Array(fks)),
        ("relations", JsonValue::Array(relations)),
        ("fk_groups", JsonValue::Array(groups)),
        (
            "requires",
            JsonValue::Array(t.requires.iter().map(name_to_json).collect()),
        ),
    ])
}

fn skipped_to_json(s: &Skipped) -> JsonValue {
    let opt = |v: &Option<String>| v.clone().map_or(JsonValue::Null, JsonValue::String);
    object([
        ("table", name_to_json(&s.table)),
        ("column", opt(&s.column)),
        ("constraint", opt(&s.constraint)),
        ("reason", JsonValue::String(s.reason.clone())),
    ])
}

/// Reading back, with errors that say what is wrong where.
mod read {
    use super::*;

    pub(super) type R<T> = std::result::Result<T, String>;

    pub(super) fn field<'a>(v: &'a JsonValue, key: &str) -> R<&'a JsonValue> {
        v.get(key).ok_or_else(|| format!("`{key}` is missing"))
    }

    pub(super) fn string(v: &JsonValue, key: &str) -> R<String> {
        field(v, key)?
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("`{key}` is not a string"))
    }

    pub(super) fn opt_string(v: &JsonValue, key: &str) -> R<Option<String>> {
        match v.get(key) {
            None | Some(JsonValue::Null) => Ok(None),
            Some(_) => string(v, key).map(Some),
        }
    }

    pub(super) fn boolean(v: &JsonValue, key: &str) -> R<bool> {
        field(v, key)?
            .as_bool()
            .ok_or_else(|| format!("`{key}` is not a boolean"))
    }

    pub(super) fn int(v: &JsonValue, key: &str) -> R<i64> {
        field(v, key)?
            .as_i64()
            .ok_or_else(|| format!("`{key}` is not an integer"))
    }

    pub(super) fn count(v: &JsonValue) -> R<usize> {
        v.as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| format!("{v} is not a count"))
    }

    pub(super) fn usize_field(v: &JsonValue, key: &str) -> R<usize> {
        count(field(v, key)?).map_err(|e| format!("`{key}`: {e}"))
    }

    pub(super) fn opt_usize(v: &JsonValue, key: &str) -> R<Option<usize>> {
        match v.get(key) {
            None | Some(JsonValue::Null) => Ok(None),
            Some(_) => usize_field(v, key).map(Some),
        }
    }

    pub(super) fn float(v: &JsonValue, key: &str) -> R<f64> {
        field(v, key)?
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("`{key}` is not a number written as text"))
    }

    pub(super) fn array<'a>(v: &'a JsonValue, key: &str) -> R<&'a Vec<JsonValue>> {
        field(v, key)?
            .as_array()
            .ok_or_else(|| format!("`{key}` is not an array"))
    }

    pub(super) fn strings(v: &JsonValue, key: &str) -> R<Vec<String>> {
        array(v, key)?
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("`{key}` holds {s}, not a string"))
            })
            .collect()
    }

    pub(super) fn name(v: &JsonValue) -> R<QualifiedName> {
        match v.as_array().map(Vec::as_slice) {
            Some([JsonValue::String(schema), JsonValue::String(name)]) => {
                Ok(QualifiedName::new(schema.clone(), name.clone()))
            }
            _ => Err(format!("{v} is not a [schema, name] pair")),
        }
    }
}

fn gen_from_json(v: &JsonValue) -> read::R<Gen> {
    use read::*;
    let kind = string(v, "kind")?;
    Ok(match kind.as_str() {
        "int" => Gen::Int {
            lo: int(v, "lo")?,
            hi: int(v, "hi")?,
            unique: match field(v, "next")? {
                JsonValue::Null => None,
                n => Some(AtomicI64::new(
                    n.as_i64().ok_or("`next` is not an integer")?,
                )),
            },
            step: int(v, "step")?,
        },
        "decimal" => Gen::Decimal {
            lo: float(v, "lo")?,
            hi: float(v, "hi")?,
            scale: u32::try_from(usize_field(v, "scale")?).map_err(|e| e.to_string())?,
        },
        "float" => Gen::Float {
            lo: float(v, "lo")?,
            hi: float(v, "hi")?,
        },
        "text" => Gen::Text {
            min_len: usize_field(v, "min_len")?,
            max_len: opt_usize(v, "max_len")?,
        },
        "one_of" => Gen::OneOf(strings(v, "values")?),
        "regex" => Gen::Regex {
            re: Regex::from_json(field(v, "re")?)?,
            min_len: usize_field(v, "min_len")?,
            max_len: opt_usize(v, "max_len")?,
            unique: boolean(v, "unique")?,
        },
        "like" => Gen::Like {
            pattern: string(v, "pattern")?,
            max_len: opt_usize(v, "max_len")?,
        },
        "date" => {
            let date = |key: &str| -> read::R<NaiveDate> {
                let text = string(v, key)?;
                NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                    .map_err(|e| format!("`{key}` {text:?}: {e}"))
            };
            Gen::Date {
                lo: date("lo")?,
                hi: date("hi")?,
            }
        }
        "timestamp" => {
            let time = |key: &str| -> read::R<DateTime<Utc>> {
                let text = string(v, key)?;
                DateTime::parse_from_rfc3339(&text)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| format!("`{key}` {text:?}: {e}"))
            };
            Gen::Timestamp {
                lo: time("lo")?,
                hi: time("hi")?,
            }
        }
        "bits" => Gen::Bits(usize_field(v, "n")?),
        "range" => {
            let range = string(v, "range")?;
            Gen::Range(
                ["int4range", "int8range", "numrange", "daterange", "tsrange"]
                    .into_iter()
                    .find(|r| *r == range)
                    .ok_or_else(|| format!("unknown range type {range}"))?,
            )
        }
        "array" => Gen::Array(Box::new(gen_from_json(field(v, "element")?)?)),
        "bool" => Gen::Bool,
        "uuid" => Gen::Uuid,
        "time" => Gen::Time,
        "interval" => Gen::Interval,
        "json" => Gen::Json,
        "bytea" => Gen::Bytea,
        "inet" => Gen::Inet,
        "cidr" => Gen::Cidr,
        "macaddr" => Gen::MacAddr,
        "tsvector" => Gen::TsVector,
        "xml" => Gen::Xml,
        "empty_array" => Gen::EmptyArray,
        other => return Err(format!("unknown kind of values `{other}`")),
    })
}

fn table_from_json(v: &JsonValue) -> read::R<TablePlan> {
    use read::*;
    let name = read::name(field(v, "name")?)?;
    let within = |e: String| format!("table {}: {e}", name.unquoted());
    let columns = array(v, "columns")
        .map_err(within)?
        .iter()
        .map(|c| {
            Ok(ColumnPlan {
                name: string(c, "name")?,
                unique: boolean(c, "unique")?,
                values: gen_from_json(field(c, "values")?)?,
            })
        })
        .collect::<read::R<Vec<_>>>()
        .map_err(within)?;
    let fks = array(v, "fks")
        .map_err(within)?
        .iter()
        .map(|fk| {
            Ok(FkPlan {
                name: string(fk, "name")?,
                columns: strings(fk, "columns")?,
                parent: read::name(field(fk, "parent")?)?,
                parent_columns: strings(fk, "parent_columns")?,
                required: boolean(fk, "required")?,
                self_reference: boolean(fk, "self_reference")?,
            })
        })
        .collect::<read::R<Vec<_>>>()
        .map_err(within)?;
    let relations = array(v, "relations")
        .map_err(within)?
        .iter()
        .map(|r| match r.as_array().map(Vec::as_slice) {
            Some([g, l, JsonValue::Bool(strict)]) => {
                let (g, l) = (count(g)?, count(l)?);
                if g >= columns.len() || l >= columns.len() {
                    return Err(format!(
                        "a relation between columns {g} and {l} out of range"
                    ));
                }
                Ok((g, l, *strict))
            }
            _ => Err(format!("{r} is not a [greater, lesser, strict] relation")),
        })
        .collect::<read::R<Vec<_>>>()
        .map_err(within)?;
    let fk_groups = array(v, "fk_groups")
        .map_err(within)?
        .iter()
        .map(|g| {
            g.as_array()
                .ok_or_else(|| format!("{g} is not a group of foreign keys"))?
                .iter()
                .map(|j| {
                    let j = count(j)?;
                    if j >= fks.len() {
                        return Err(format!("foreign key {j} of a group is out of range"));
                    }
                    Ok(j)
                })
                .collect()
        })
        .collect::<read::R<Vec<Vec<usize>>>>()
        .map_err(within)?;
    let requires = array(v, "requires")
        .map_err(within)?
        .iter()
        .map(read::name)
        .collect::<read::R<Vec<_>>>()
        .map_err(within)?;
    Ok(TablePlan {
        name,
        columns,
        fks,
        relations,
        fk_groups,
        requires,
    })
}

fn skipped_from_json(v: &JsonValue) -> read::R<Skipped> {
    use read::*;
    Ok(Skipped {
        table: read::name(field(v, "table")?)?,
        column: opt_string(v, "column")?,
        constraint: opt_string(v, "constraint")?,
        reason: string(v, "reason")?,
    })
}

impl RowPlan {
    /// The plan as JSON: its tables, how each column's values are made, the rows migrations
    /// left that keys may point at, and where its counters stand. [`from_json`](Self::from_json)
    /// reads it back.
    fn to_json(&self) -> JsonValue {
        let prefilled = {
            let mut tables: Vec<(&QualifiedName, &Vec<JsonValue>)> =
                self.prefilled.iter().collect();
            tables.sort_by(|a, b| a.0.cmp(b.0));
            tables
                .into_iter()
                .map(|(name, rows)| {
                    object([
                        ("table", name_to_json(name)),
                        ("rows", JsonValue::Array(rows.clone())),
                    ])
                })
                .collect()
        };
        object([
            ("format", JsonValue::String(FORMAT.into())),
            ("seq", JsonValue::from(self.seq.load(Relaxed))),
            ("seq_step", JsonValue::from(self.seq_step)),
            ("schema_tables", JsonValue::from(self.schema_tables)),
            (
                "tables",
                JsonValue::Array(self.tables.iter().map(table_to_json).collect()),
            ),
            (
                "skipped",
                JsonValue::Array(self.skipped.iter().map(skipped_to_json).collect()),
            ),
            ("prefilled", JsonValue::Array(prefilled)),
        ])
    }

    fn from_json(v: &JsonValue) -> read::R<RowPlan> {
        use read::*;
        let format = string(v, "format")?;
        if format != FORMAT {
            return Err(format!(
                "it is a plan of format {format}, this build of seedbed reads {FORMAT}"
            ));
        }
        let seq = field(v, "seq")?.as_u64().ok_or("`seq` is not a count")?;
        let seq_step = field(v, "seq_step")?
            .as_u64()
            .filter(|s| *s > 0)
            .ok_or("`seq_step` is not a positive count")?;
        let tables = array(v, "tables")?
            .iter()
            .map(table_from_json)
            .collect::<R<Vec<_>>>()?;
        let skipped = array(v, "skipped")?
            .iter()
            .map(skipped_from_json)
            .collect::<R<Vec<_>>>()?;
        let mut prefilled = HashMap::new();
        for p in array(v, "prefilled")? {
            let table = read::name(field(p, "table")?)?;
            prefilled.insert(table, array(p, "rows")?.clone());
        }
        let mut plan = RowPlan {
            tables,
            index: HashMap::new(),
            skipped,
            prefilled,
            schema_tables: usize_field(v, "schema_tables")?,
            seq: AtomicU64::new(seq),
            seq_step,
            all_columns: HashMap::new(),
        };
        plan.reindex();
        Ok(plan)
    }

    /// Writes the plan to `path`, for test processes that [`load`](Self::load) it: what
    /// `seedbed bench` gives every child process of its process-per-test runs. Its counters are
    /// saved where they stand; give each process its own part with
    /// [`interleave`](Self::interleave).
    ///
    /// ```no_run
    /// # async fn demo(conn: &mut sqlx::PgConnection) -> Result<(), seedbed::Error> {
    /// use seedbed::bench::RowPlan;
    ///
    /// let plan = RowPlan::analyze(conn, 20).await?;
    /// let path = std::env::temp_dir().join("plan.json");
    /// plan.save(&path)?;
    /// let copy = RowPlan::load(&path)?;
    /// assert!(copy.tables().eq(plan.tables()));
    /// # Ok(()) }
    /// ```
    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_json().to_string())
            .map_err(Error::io("cannot write the row plan to", path))
    }

    /// Reads a plan [`save`](Self::save) wrote (by this build of seedbed):
    /// [`Error::BenchPlan`] when the file is not one.
    pub fn load(path: &Path) -> Result<RowPlan> {
        let text = std::fs::read_to_string(path)
            .map_err(Error::io("cannot read the row plan from", path))?;
        let bad = |reason: String| Error::BenchPlan {
            path: path.to_path_buf(),
            reason,
        };
        let value: JsonValue = text
            .parse()
            .map_err(|e| bad(format!("it is not JSON: {e}")))?;
        RowPlan::from_json(&value).map_err(bad)
    }
}

#[cfg(test)]
#[path = "plan_file_tests.rs"]
mod tests;
