//! The CHECK constraint parser: the text `pg_get_constraintdef` prints, tokenized and read into
//! an [`Expr`].

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

pub(crate) const COMPARISONS: [&str; 7] = ["=", "<>", "!=", "<", "<=", ">", ">="];
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
        if let Some(e) = self.keyword_comparison(&lhs)? {
            return Ok(e);
        }
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

    /// The comparisons written with keywords, as SQLite keeps a table's checks in the text they
    /// were written in: `x [NOT] IN (…)` (read as `= ANY`/`<> ALL`), `x [NOT] BETWEEN a AND b`,
    /// `x [NOT] GLOB '…'` and `x [NOT] LIKE '…'`. `None` when none follows `lhs`.
    fn keyword_comparison(&mut self, lhs: &Expr) -> Result<Option<Expr>, String> {
        let start = self.pos;
        let negated = self.keyword("NOT");
        if negated {
            self.pos += 1;
        }
        let e = if self.keyword("IN") {
            self.pos += 1;
            self.expect(Tok::LParen)?;
            let mut items = Vec::new();
            if self.peek() != Some(&Tok::RParen) {
                loop {
                    items.push(self.additive()?);
                    if self.peek() == Some(&Tok::Comma) {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
            }
            self.expect(Tok::RParen)?;
            Expr::Any {
                op: if negated { "<>" } else { "=" }.into(),
                all: negated,
                lhs: Box::new(lhs.clone()),
                rhs: Box::new(Expr::Array(items)),
            }
        } else if self.keyword("BETWEEN") {
            self.pos += 1;
            let low = self.additive()?;
            if !self.keyword("AND") {
                return Err("expected AND in BETWEEN".into());
            }
            self.pos += 1;
            let high = self.additive()?;
            let range = Expr::And(vec![
                Expr::Bin(">=".into(), Box::new(lhs.clone()), Box::new(low)),
                Expr::Bin("<=".into(), Box::new(lhs.clone()), Box::new(high)),
            ]);
            if negated {
                Expr::Not(Box::new(range))
            } else {
                range
            }
        } else if self.keyword("GLOB") || self.keyword("LIKE") {
            let op = match (self.keyword("GLOB"), negated) {
                (true, false) => "glob",
                (true, true) => "!glob",
                (false, false) => "~~",
                (false, true) => "!~~",
            };
            self.pos += 1;
            let rhs = self.additive()?;
            Expr::Bin(op.into(), Box::new(lhs.clone()), Box::new(rhs))
        } else {
            self.pos = start;
            return Ok(None);
        };
        Ok(Some(e))
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
