//! Reading CHECK constraints, as the server prints them (`pg_get_constraintdef`), into rules the
//! row generator can satisfy: bounds, lengths, lists of allowed values, patterns, NULL or not, and
//! orderings between two columns.
//!
//! Only the shapes PostgreSQL prints for the common checks are understood (`x > 0`,
//! `length(x) <= 200`, `x = ANY (ARRAY[…])`, `x ~ '…'`, `x IS NULL OR …`, `a > b`); anything else
//! is recorded as *opaque*: the generator still tries, and the probe insert tells whether the
//! server accepts what it made.

use std::collections::HashMap;

/// An expression of a CHECK constraint.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Col(String),
    Str(String),
    Num(String),
    Bool(bool),
    Null,
    Array(Vec<Expr>),
    Func(String, Vec<Expr>),
    Cast(Box<Expr>, String),
    Bin(String, Box<Expr>, Box<Expr>),
    Any {
        op: String,
        all: bool,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    IsNull(Box<Expr>, bool),
    Neg(Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String, bool),
    Str(String),
    Num(String),
    Op(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Cast,
}

fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            '[' => {
                out.push(Tok::LBracket);
                i += 1;
            }
            ']' => {
                out.push(Tok::RBracket);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&':') => {
                out.push(Tok::Cast);
                i += 2;
            }
            '.' if !chars.get(i + 1).is_some_and(char::is_ascii_digit) => {
                out.push(Tok::Dot);
                i += 1;
            }
            '\'' => {
                let (s, next) = quoted(&chars, i, '\'')?;
                out.push(Tok::Str(s));
                i = next;
            }
            'E' | 'e' if chars.get(i + 1) == Some(&'\'') => {
                let (s, next) = quoted(&chars, i + 1, '\'')?;
                out.push(Tok::Str(unescape_e(&s)));
                i = next;
            }
            '"' => {
                let (s, next) = quoted(&chars, i, '"')?;
                out.push(Tok::Ident(s, true));
                i = next;
            }
            c if c.is_ascii_digit() || c == '.' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_digit()
                        || chars[i] == '.'
                        || ((chars[i] == 'e' || chars[i] == 'E')
                            && chars
                                .get(i + 1)
                                .is_some_and(|d| d.is_ascii_digit() || *d == '-' || *d == '+'))
                        || ((chars[i] == '-' || chars[i] == '+')
                            && i > start
                            && (chars[i - 1] == 'e' || chars[i - 1] == 'E')))
                {
                    i += 1;
                }
                out.push(Tok::Num(chars[start..i].iter().collect()));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
                {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect(), false));
            }
            c if "+-*/<>=~!@#%^&|`?".contains(c) => {
                let start = i;
                while i < chars.len() && "+-*/<>=~!@#%^&|`?".contains(chars[i]) {
                    i += 1;
                }
                out.push(Tok::Op(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected character `{other}`")),
        }
    }
    Ok(out)
}

/// A quoted string or identifier starting at `start` (the quote), with doubled quotes undone.
fn quoted(chars: &[char], start: usize, q: char) -> Result<(String, usize), String> {
    let mut s = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err("unterminated quote".into()),
            Some(c) if *c == q => {
                if chars.get(i + 1) == Some(&q) {
                    s.push(q);
                    i += 2;
                } else {
                    return Ok((s, i + 1));
                }
            }
            Some(c) => {
                s.push(*c);
                i += 1;
            }
        }
    }
}

/// Undoes the backslash escapes of an `E'…'` string (the common ones).
fn unescape_e(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

const COMPARISONS: [&str; 7] = ["=", "<>", "!=", "<", "<=", ">", ">="];
const TYPE_WORDS: [&str; 6] = ["varying", "precision", "with", "without", "time", "zone"];

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(w, false)) if w.eq_ignore_ascii_case(word))
    }

    fn expect(&mut self, tok: Tok) -> Result<(), String> {
        match self.next() {
            Some(t) if t == tok => Ok(()),
            other => Err(format!("expected {tok:?}, found {other:?}")),
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let mut parts = vec![self.and()?];
        while self.keyword("OR") {
            self.pos += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut parts = vec![self.not()?];
        while self.keyword("AND") {
            self.pos += 1;
            parts.push(self.not()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::And(parts)
        })
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.keyword("NOT") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.is()
    }

    fn is(&mut self) -> Result<Expr, String> {
        let e = self.comparison()?;
        if self.keyword("IS") {
            self.pos += 1;
            let negated = self.keyword("NOT");
            if negated {
                self.pos += 1;
            }
            if self.keyword("NULL") {
                self.pos += 1;
                return Ok(Expr::IsNull(Box::new(e), negated));
            }
            for (word, value) in [("TRUE", true), ("FALSE", false)] {
                if self.keyword(word) {
                    self.pos += 1;
                    let cmp = Expr::Bin("=".into(), Box::new(e), Box::new(Expr::Bool(value)));
                    return Ok(if negated {
                        Expr::Not(Box::new(cmp))
                    } else {
                        cmp
                    });
                }
            }
            return Err("unsupported IS clause".into());
        }
        Ok(e)
    }

    fn comparison(&mut self) -> Result<Expr, String> {
        let lhs = self.additive()?;
        let op = match self.peek() {
            Some(Tok::Op(op))
                if COMPARISONS.contains(&op.as_str())
                    || matches!(
                        op.as_str(),
                        "~" | "~*" | "!~" | "!~*" | "~~" | "~~*" | "!~~" | "!~~*"
                    ) =>
            {
                op.clone()
            }
            _ => return Ok(lhs),
        };
        self.pos += 1;
        if self.keyword("ANY") || self.keyword("ALL") || self.keyword("SOME") {
            let all = self.keyword("ALL");
            self.pos += 1;
            self.expect(Tok::LParen)?;
            let rhs = self.expr()?;
            self.expect(Tok::RParen)?;
            return Ok(Expr::Any {
                op,
                all,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            });
        }
        let rhs = self.additive()?;
        Ok(Expr::Bin(op, Box::new(lhs), Box::new(rhs)))
    }

    fn additive(&mut self) -> Result<Expr, String> {
        let mut lhs = self.multiplicative()?;
        while let Some(Tok::Op(op)) = self.peek() {
            if !matches!(op.as_str(), "+" | "-" | "||") {
                break;
            }
            let op = op.clone();
            self.pos += 1;
            let rhs = self.multiplicative()?;
            lhs = Expr::Bin(op, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn multiplicative(&mut self) -> Result<Expr, String> {
        let mut lhs = self.unary()?;
        while let Some(Tok::Op(op)) = self.peek() {
            if !matches!(op.as_str(), "*" | "/" | "%") {
                break;
            }
            let op = op.clone();
            self.pos += 1;
            let rhs = self.unary()?;
            lhs = Expr::Bin(op, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if matches!(self.peek(), Some(Tok::Op(op)) if op == "-") {
            self.pos += 1;
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, String> {
        let mut e = self.primary()?;
        while self.peek() == Some(&Tok::Cast) {
            self.pos += 1;
            let ty = self.type_name()?;
            e = Expr::Cast(Box::new(e), ty);
        }
        Ok(e)
    }

    fn type_name(&mut self) -> Result<String, String> {
        let mut name = match self.next() {
            Some(Tok::Ident(w, _)) => w,
            other => return Err(format!("expected a type name, found {other:?}")),
        };
        if self.peek() == Some(&Tok::Dot) {
            self.pos += 1;
            match self.next() {
                Some(Tok::Ident(w, _)) => name = w,
                other => return Err(format!("expected a type name, found {other:?}")),
            }
        }
        while let Some(Tok::Ident(w, false)) = self.peek() {
            if !TYPE_WORDS.contains(&w.to_ascii_lowercase().as_str()) {
                break;
            }
            name.push(' ');
            name.push_str(&w.to_ascii_lowercase());
            self.pos += 1;
        }
        if self.peek() == Some(&Tok::LParen) {
            while let Some(t) = self.next() {
                if t == Tok::RParen {
                    break;
                }
            }
        }
        while self.peek() == Some(&Tok::LBracket) {
            self.pos += 1;
            self.expect(Tok::RBracket)?;
            name.push_str("[]");
        }
        Ok(name)
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Tok::LParen) => {
                let e = self.expr()?;
                self.expect(Tok::RParen)?;
                Ok(e)
            }
            Some(Tok::Str(s)) => Ok(Expr::Str(s)),
            Some(Tok::Num(n)) => Ok(Expr::Num(n)),
            Some(Tok::Ident(w, false)) if w.eq_ignore_ascii_case("NULL") => Ok(Expr::Null),
            Some(Tok::Ident(w, false)) if w.eq_ignore_ascii_case("TRUE") => Ok(Expr::Bool(true)),
            Some(Tok::Ident(w, false)) if w.eq_ignore_ascii_case("FALSE") => Ok(Expr::Bool(false)),
            Some(Tok::Ident(w, false))
                if w.eq_ignore_ascii_case("ARRAY") && self.peek() == Some(&Tok::LBracket) =>
            {
                self.pos += 1;
                let mut items = Vec::new();
                if self.peek() != Some(&Tok::RBracket) {
                    loop {
                        items.push(self.expr()?);
                        if self.peek() == Some(&Tok::Comma) {
                            self.pos += 1;
                        } else {
                            break;
                        }
                    }
                }
                self.expect(Tok::RBracket)?;
                Ok(Expr::Array(items))
            }
            Some(Tok::Ident(w, quoted)) => {
                if self.peek() == Some(&Tok::LParen) {
                    self.pos += 1;
                    let mut args = Vec::new();
                    if self.peek() != Some(&Tok::RParen) {
                        loop {
                            args.push(self.expr()?);
                            if self.peek() == Some(&Tok::Comma) {
                                self.pos += 1;
                            } else {
                                break;
                            }
                        }
                    }
                    self.expect(Tok::RParen)?;
                    return Ok(Expr::Func(w.to_ascii_lowercase(), args));
                }
                if self.peek() == Some(&Tok::Dot) {
                    // table.column: the column.
                    self.pos += 1;
                    return match self.next() {
                        Some(Tok::Ident(c, _)) => Ok(Expr::Col(c)),
                        other => Err(format!("expected a column after `.`, found {other:?}")),
                    };
                }
                let _ = quoted;
                Ok(Expr::Col(w))
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }
}

/// Parses a CHECK constraint as `pg_get_constraintdef` prints it (`CHECK ((x > 0))`, with an
/// optional `NOT VALID`), or a bare expression.
pub(crate) fn parse(definition: &str) -> Result<Expr, String> {
    let text = definition.trim();
    let text = text.strip_suffix("NOT VALID").unwrap_or(text).trim();
    let text = text.strip_suffix("NO INHERIT").unwrap_or(text).trim();
    let body = text.strip_prefix("CHECK").unwrap_or(text);
    let mut p = Parser {
        toks: tokenize(body)?,
        pos: 0,
    };
    let e = p.expr()?;
    if p.pos < p.toks.len() {
        return Err(format!("unexpected {:?}", p.toks[p.pos]));
    }
    Ok(e)
}

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
    /// `Some(true)`: must be NULL; `Some(false)`: must not be.
    pub(crate) null: Option<bool>,
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
            if r.null.is_some() {
                mine.null = r.null;
            }
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
mod tests {
    use super::*;

    fn rules(defs: &[&str], nullable: &[&str]) -> TableRules {
        let mut t = TableRules::default();
        for (i, d) in defs.iter().enumerate() {
            t.add_check(
                &format!("c{i}"),
                d,
                &|n| Some(if n == "VALUE" { "v".into() } else { n.into() }),
                &|c| nullable.contains(&c),
            );
        }
        t
    }

    #[test]
    fn reads_bounds_lengths_lists_and_patterns() {
        let t = rules(
            &[
                "CHECK (((minutes > 0) AND (minutes <= 1440)))",
                "CHECK ((\"position\" >= 0))",
                "CHECK (((length(title) >= 1) AND (length(title) <= 200)))",
                "CHECK ((digest = ANY (ARRAY['never'::text, 'daily'::text, 'weekly'::text])))",
                "CHECK ((slug ~ '^[a-z0-9][a-z0-9-]*$'::text))",
                "CHECK ((VALUE ~ '^[^@[:space:]]+@[^@[:space:]]+$'::text))",
                "CHECK ((amount >= (0)::numeric))",
                "CHECK ((x > '-5'::integer))",
            ],
            &[],
        );
        let m = t.column("minutes").unwrap();
        assert_eq!(m.lower.as_ref().unwrap().0.number, Some(0.0));
        assert!(!m.lower.as_ref().unwrap().1);
        assert_eq!(m.upper.as_ref().unwrap().0.number, Some(1440.0));
        assert!(t.column("position").unwrap().lower.is_some());
        let title = t.column("title").unwrap();
        assert_eq!((title.min_len, title.max_len), (Some(1), Some(200)));
        assert_eq!(
            t.column("digest").unwrap().one_of.as_deref().unwrap(),
            ["never", "daily", "weekly"]
        );
        assert_eq!(
            t.column("slug").unwrap().patterns,
            [Pattern::Regex("^[a-z0-9][a-z0-9-]*$".into())]
        );
        assert_eq!(t.column("v").unwrap().patterns.len(), 1);
        assert_eq!(
            t.column("amount").unwrap().lower.as_ref().unwrap().0.number,
            Some(0.0)
        );
        assert_eq!(
            t.column("x").unwrap().lower.as_ref().unwrap().0.number,
            Some(-5.0)
        );
        assert!(t.columns.values().all(|c| c.opaque.is_empty()));
    }

    #[test]
    fn reads_or_null_and_relations() {
        let t = rules(
            &[
                "CHECK (((ends_at IS NULL) OR (ends_at > started_at)))",
                "CHECK ((due_on >= issued_on))",
            ],
            &["ends_at"],
        );
        assert_eq!(t.column("ends_at").unwrap().null, Some(true));
        assert_eq!(
            t.relations,
            [Relation {
                greater: "due_on".into(),
                lesser: "issued_on".into(),
                strict: false
            }]
        );
        // Not nullable: the ordering branch is taken.
        let t = rules(
            &["CHECK (((ends_at IS NULL) OR (ends_at > started_at)))"],
            &[],
        );
        assert_eq!(t.relations.len(), 1);
    }

    #[test]
    fn marks_what_it_cannot_read() {
        let t = rules(&["CHECK ((lower(name) = name))"], &[]);
        assert_eq!(t.column("name").unwrap().opaque, ["c0"]);
        let t = rules(&["CHECK (CASE WHEN a THEN b END)"], &[]);
        assert!(t.columns.values().any(|c| !c.opaque.is_empty()));
    }
}
