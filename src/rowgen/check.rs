//! Reading CHECK constraints, as the server prints them (`pg_get_constraintdef`), into rules the
//! row generator can satisfy: bounds, lengths, lists of allowed values, patterns, NULL or not, and
//! orderings between two columns.
//!
//! Only the shapes PostgreSQL prints for the common checks are understood (`x > 0`,
//! `length(x) <= 200`, `x = ANY (ARRAY[…])`, `x ~ '…'`, `x IS NULL OR …`, `a > b`); anything else
//! is recorded as *opaque*: the generator still tries, and the probe insert tells whether the
//! server accepts what it made.

use std::collections::HashMap;

#[path = "check_parse.rs"]
mod parse;

use self::parse::COMPARISONS;
pub(crate) use self::parse::{Expr, parse};

/// A constant of a comparison: its text and, when it reads as one, its number.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Const {
    pub(crate) text: String,
    pub(crate) number: Option<f64>,
}

/// A pattern a text column must match.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Pattern {
    /// A POSIX regular expression (`~`, `~*`).
    Regex(String),
    /// A `LIKE` pattern (`~~`, `~~*`).
    Like(String),
    /// A SQLite `GLOB` pattern.
    Glob(String),
}

/// What the checks ask of one column.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ColumnRules {
    /// Lower bound and whether it is inclusive.
    pub(crate) lower: Option<(Const, bool)>,
    /// Upper bound and whether it is inclusive.
    pub(crate) upper: Option<(Const, bool)>,
    pub(crate) min_len: Option<usize>,
    pub(crate) max_len: Option<usize>,
    /// The only values allowed.
    pub(crate) one_of: Option<Vec<String>>,
    /// Values not allowed.
    pub(crate) not_in: Vec<String>,
    pub(crate) patterns: Vec<Pattern>,
    /// The only characters allowed (a bracket expression's body, `a-z0-9-`): what SQLite's
    /// `x NOT GLOB '*[^a-z0-9-]*'` says.
    pub(crate) chars: Option<String>,
    /// `Some(true)`: must be NULL; `Some(false)`: must not be.
    pub(crate) null: Option<bool>,
    /// The column holds JSON text (SQLite's `json_valid(x)`).
    pub(crate) json: bool,
    /// Checks mentioning the column that were not (fully) understood.
    pub(crate) opaque: Vec<String>,
}

impl ColumnRules {
    fn set_lower(&mut self, c: Const, inclusive: bool) {
        let tighter = match (&self.lower, c.number) {
            (Some((old, _)), Some(n)) => old.number.is_none_or(|o| n > o),
            _ => true,
        };
        if tighter {
            self.lower = Some((c, inclusive));
        }
    }

    fn set_upper(&mut self, c: Const, inclusive: bool) {
        let tighter = match (&self.upper, c.number) {
            (Some((old, _)), Some(n)) => old.number.is_none_or(|o| n < o),
            _ => true,
        };
        if tighter {
            self.upper = Some((c, inclusive));
        }
    }

    fn allow_only(&mut self, values: Vec<String>) {
        self.one_of = Some(match self.one_of.take() {
            Some(old) => old.into_iter().filter(|v| values.contains(v)).collect(),
            None => values,
        });
    }
}

/// `greater op lesser` between two columns of a row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Relation {
    pub(crate) greater: String,
    pub(crate) lesser: String,
    /// `>` rather than `>=`.
    pub(crate) strict: bool,
}

/// What the checks of one table (and the domains of its columns) ask of its rows.
#[derive(Debug, Clone, Default)]
pub(crate) struct TableRules {
    pub(crate) columns: HashMap<String, ColumnRules>,
    pub(crate) relations: Vec<Relation>,
}

impl TableRules {
    pub(crate) fn column(&self, name: &str) -> Option<&ColumnRules> {
        self.columns.get(name)
    }

    /// Adds what one check asks. `column` maps a name in the check to the table's column
    /// (`VALUE` in a domain's check), `nullable` says whether a column may be left NULL.
    pub(crate) fn add_check(
        &mut self,
        name: &str,
        definition: &str,
        column: &dyn Fn(&str) -> Option<String>,
        nullable: &dyn Fn(&str) -> bool,
    ) {
        match parse(definition) {
            Ok(expr) => {
                let mut scratch = TableRules::default();
                if scratch.atom(&expr, column, nullable) {
                    self.merge(scratch);
                } else {
                    // Keep what was understood; mark the columns it mentions.
                    let mut mentioned = Vec::new();
                    columns_of(&expr, column, &mut mentioned);
                    self.merge(scratch);
                    for c in mentioned {
                        let rules = self.columns.entry(c).or_default();
                        if !rules.opaque.iter().any(|o| o == name) {
                            rules.opaque.push(name.to_string());
                        }
                    }
                }
            }
            Err(_) => {
                let mut mentioned = Vec::new();
                for word in definition.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                    if let Some(c) = column(word)
                        && !mentioned.contains(&c)
                    {
                        mentioned.push(c);
                    }
                }
                for c in mentioned {
                    self.columns
                        .entry(c)
                        .or_default()
                        .opaque
                        .push(name.to_string());
                }
            }
        }
    }

    fn merge(&mut self, other: TableRules) {
        for (name, r) in other.columns {
            let mine = self.columns.entry(name).or_default();
            if let Some((c, inc)) = r.lower {
                mine.set_lower(c, inc);
            }
            if let Some((c, inc)) = r.upper {
                mine.set_upper(c, inc);
            }
            if let Some(n) = r.min_len {
                mine.min_len = Some(mine.min_len.map_or(n, |m| m.max(n)));
            }
            if let Some(n) = r.max_len {
                mine.max_len = Some(mine.max_len.map_or(n, |m| m.min(n)));
            }
            if let Some(values) = r.one_of {
                mine.allow_only(values);
            }
            mine.not_in.extend(r.not_in);
            mine.patterns.extend(r.patterns);
            if r.chars.is_some() {
                mine.chars = r.chars;
            }
            if r.null.is_some() {
                mine.null = r.null;
            }
            mine.json |= r.json;
            mine.opaque.extend(r.opaque);
        }
        self.relations.extend(other.relations);
    }

    /// Interprets one conjunct; false when some part of it was not understood.
    fn atom(
        &mut self,
        e: &Expr,
        column: &dyn Fn(&str) -> Option<String>,
        nullable: &dyn Fn(&str) -> bool,
    ) -> bool {
        match e {
            Expr::And(parts) => {
                let mut ok = true;
                for p in parts {
                    ok &= self.atom(p, column, nullable);
                }
                ok
            }
            Expr::Or(branches) => {
                // A branch `c IS NULL` on a nullable column: leave it NULL.
                for b in branches {
                    if let Expr::IsNull(inner, false) = b
                        && let Some(c) = col_ref(inner, column)
                        && nullable(&c)
                    {
                        self.columns.entry(c).or_default().null = Some(true);
                        return true;
                    }
                }
                // Else the first branch fully understood.
                for b in branches {
                    let mut scratch = TableRules::default();
                    let impossible = |r: &TableRules| {
                        r.columns
                            .iter()
                            .any(|(c, rules)| rules.null == Some(true) && !nullable(c))
                    };
                    if scratch.atom(b, column, nullable) && !impossible(&scratch) {
                        self.merge(scratch);
                        return true;
                    }
                }
                false
            }
            Expr::Bool(true) => true,
            Expr::IsNull(inner, negated) => match col_ref(inner, column) {
                Some(c) => {
                    self.columns.entry(c).or_default().null = Some(!negated);
                    true
                }
                None => false,
            },
            Expr::Col(_) | Expr::Cast(..) if col_ref(e, column).is_some() => {
                if let Some(c) = col_ref(e, column) {
                    self.columns
                        .entry(c)
                        .or_default()
                        .allow_only(vec!["true".into()]);
                }
                true
            }
            Expr::Not(inner) => match col_ref(inner, column) {
                Some(c) => {
                    self.columns
                        .entry(c)
                        .or_default()
                        .allow_only(vec!["false".into()]);
                    true
                }
                None => false,
            },
            Expr::Any { op, all, lhs, rhs } => {
                let Some(c) = col_ref(lhs, column) else {
                    return false;
                };
                let Some(values) = const_list(rhs) else {
                    return false;
                };
                match (op.as_str(), all) {
                    ("=", false) => {
                        self.columns.entry(c).or_default().allow_only(values);
                        true
                    }
                    ("<>" | "!=", true) => {
                        self.columns.entry(c).or_default().not_in.extend(values);
                        true
                    }
                    _ => false,
                }
            }
            Expr::Bin(op, lhs, rhs) => self.comparison(op, lhs, rhs, column),
            Expr::Func(f, args) if f == "json_valid" && args.len() == 1 => {
                match col_ref(&args[0], column) {
                    Some(c) => {
                        self.columns.entry(c).or_default().json = true;
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        }
    }

    fn comparison(
        &mut self,
        op: &str,
        lhs: &Expr,
        rhs: &Expr,
        column: &dyn Fn(&str) -> Option<String>,
    ) -> bool {
        match op {
            "~" | "~*" | "~~" | "~~*" => {
                let (Some(c), Some(k)) = (col_ref(lhs, column), constant(rhs)) else {
                    return false;
                };
                let pattern = if op.starts_with("~~") {
                    Pattern::Like(k.text)
                } else {
                    Pattern::Regex(k.text)
                };
                self.columns.entry(c).or_default().patterns.push(pattern);
                true
            }
            "glob" => {
                let (Some(c), Some(k)) = (col_ref(lhs, column), constant(rhs)) else {
                    return false;
                };
                let rules = self.columns.entry(c).or_default();
                rules.patterns.push(Pattern::Glob(k.text));
                true
            }
            "!glob" => {
                let Some(c) = col_ref(lhs, column) else {
                    return false;
                };
                // `NOT GLOB '*[^set]*'`: every character is in the set.
                if let Some(k) = constant(rhs)
                    && let Some(set) = k
                        .text
                        .strip_prefix("*[^")
                        .and_then(|rest| rest.strip_suffix("]*"))
                        .filter(|set| !set.is_empty() && !set.contains(']'))
                {
                    self.columns.entry(c).or_default().chars = Some(set.to_string());
                    return true;
                }
                // Other patterns a value must not match: left to the probe.
                false
            }
            // Values are unlikely to match a pattern they must not; the probe checks.
            "!~" | "!~*" | "!~~" | "!~~*" => col_ref(lhs, column).is_some(),
            op if COMPARISONS.contains(&op) => {
                if let (Some(c), Some(k)) = (col_ref(lhs, column), constant(rhs)) {
                    self.bound(&c, op, k);
                    return true;
                }
                if let (Some(k), Some(c)) = (constant(lhs), col_ref(rhs, column)) {
                    self.bound(&c, flip(op), k);
                    return true;
                }
                if let (Some(c), Some(k)) = (length_ref(lhs, column), constant(rhs)) {
                    return self.length(&c, op, &k);
                }
                if let (Some(k), Some(c)) = (constant(lhs), length_ref(rhs, column)) {
                    return self.length(&c, flip(op), &k);
                }
                if let (Some(a), Some(b)) = (col_ref(lhs, column), col_ref(rhs, column)) {
                    let relation = match op {
                        ">" => Relation {
                            greater: a,
                            lesser: b,
                            strict: true,
                        },
                        ">=" => Relation {
                            greater: a,
                            lesser: b,
                            strict: false,
                        },
                        "<" => Relation {
                            greater: b,
                            lesser: a,
                            strict: true,
                        },
                        "<=" => Relation {
                            greater: b,
                            lesser: a,
                            strict: false,
                        },
                        _ => return false,
                    };
                    self.relations.push(relation);
                    return true;
                }
                false
            }
            _ => false,
        }
    }

    fn bound(&mut self, c: &str, op: &str, k: Const) {
        let rules = self.columns.entry(c.to_string()).or_default();
        match op {
            "=" => rules.allow_only(vec![k.text]),
            "<>" | "!=" => rules.not_in.push(k.text),
            ">" => rules.set_lower(k, false),
            ">=" => rules.set_lower(k, true),
            "<" => rules.set_upper(k, false),
            "<=" => rules.set_upper(k, true),
            _ => {}
        }
    }

    fn length(&mut self, c: &str, op: &str, k: &Const) -> bool {
        let Some(n) = k.number else {
            return false;
        };
        let n = n.max(0.0) as usize;
        let rules = self.columns.entry(c.to_string()).or_default();
        let (min, max) = match op {
            "=" => (Some(n), Some(n)),
            ">" => (Some(n + 1), None),
            ">=" => (Some(n), None),
            "<" => (None, Some(n.saturating_sub(1))),
            "<=" => (None, Some(n)),
            _ => return false,
        };
        if let Some(m) = min {
            rules.min_len = Some(rules.min_len.map_or(m, |o| o.max(m)));
        }
        if let Some(m) = max {
            rules.max_len = Some(rules.max_len.map_or(m, |o| o.min(m)));
        }
        true
    }
}

fn flip(op: &str) -> &str {
    match op {
        ">" => "<",
        ">=" => "<=",
        "<" => ">",
        "<=" => ">=",
        other => other,
    }
}

/// The column an expression reads, through casts.
fn col_ref(e: &Expr, column: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    match e {
        Expr::Col(name) => column(name),
        Expr::Cast(inner, _) => col_ref(inner, column),
        _ => None,
    }
}

/// The column whose length an expression measures (`length(x)`, `char_length(btrim(x))`).
fn length_ref(e: &Expr, column: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    match e {
        Expr::Func(f, args)
            if matches!(
                f.as_str(),
                "length" | "char_length" | "character_length" | "octet_length"
            ) && args.len() == 1 =>
        {
            let mut arg = &args[0];
            loop {
                match arg {
                    Expr::Func(g, inner)
                        if matches!(g.as_str(), "btrim" | "trim" | "lower" | "upper")
                            && inner.len() == 1 =>
                    {
                        arg = &inner[0];
                    }
                    Expr::Cast(inner, _) => arg = inner,
                    _ => break,
                }
            }
            col_ref(arg, column)
        }
        Expr::Cast(inner, _) => length_ref(inner, column),
        _ => None,
    }
}

/// A constant: a literal, through casts and a unary minus.
fn constant(e: &Expr) -> Option<Const> {
    match e {
        Expr::Str(s) => Some(Const {
            text: s.clone(),
            number: s.trim().parse().ok(),
        }),
        Expr::Num(n) => Some(Const {
            text: n.clone(),
            number: n.parse().ok(),
        }),
        Expr::Bool(b) => Some(Const {
            text: b.to_string(),
            number: None,
        }),
        Expr::Cast(inner, _) => constant(inner),
        Expr::Neg(inner) => {
            let c = constant(inner)?;
            Some(Const {
                text: format!("-{}", c.text),
                number: c.number.map(|n| -n),
            })
        }
        _ => None,
    }
}

/// The constants of `ARRAY[…]` (through casts).
fn const_list(e: &Expr) -> Option<Vec<String>> {
    match e {
        Expr::Array(items) => items.iter().map(|i| constant(i).map(|c| c.text)).collect(),
        Expr::Cast(inner, _) => const_list(inner),
        _ => None,
    }
}

fn columns_of(e: &Expr, column: &dyn Fn(&str) -> Option<String>, out: &mut Vec<String>) {
    let mut visit = |x: &Expr| columns_of(x, column, out);
    match e {
        Expr::Col(name) => {
            if let Some(c) = column(name)
                && !out.contains(&c)
            {
                out.push(c);
            }
        }
        Expr::Array(items) | Expr::Func(_, items) | Expr::And(items) | Expr::Or(items) => {
            items.iter().for_each(visit)
        }
        Expr::Cast(inner, _) | Expr::Not(inner) | Expr::IsNull(inner, _) | Expr::Neg(inner) => {
            visit(inner)
        }
        Expr::Bin(_, a, b) | Expr::Any { lhs: a, rhs: b, .. } => {
            visit(a);
            visit(b);
        }
        Expr::Str(_) | Expr::Num(_) | Expr::Bool(_) | Expr::Null => {}
    }
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
