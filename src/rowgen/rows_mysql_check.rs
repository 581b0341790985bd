//! CHECK constraints as MySQL and MariaDB print them, rewritten into the text the check reader
//! ([`check_parse`](crate::rowgen::check_parse)) understands.

use crate::sql::{quote_ident, quote_literal};

/// A CHECK constraint as MySQL or MariaDB prints it (`` `qty` > 0 and `status` in ('a','b') ``,
/// `` (`qty` > 0) ``, `` regexp_like(`key`,_utf8mb4'^[A-Z]') ``), in the text the check reader
/// understands: identifiers in double quotes, strings with doubled quotes and no character set
/// introducers, `REGEXP` as `~`, `NOT REGEXP '[^set]'` (no character outside the set) as the
/// `NOT GLOB '*[^set]*'` that says the same, and `!` and `&&` as `NOT` and `AND`.
///
/// A `REGEXP '^prefix'` anchored at its start only, in a check that also allows only the
/// characters of a set (and has no `OR`), becomes `'^prefix[set]*$'`: the values the generator
/// makes for it then stay inside the set.
pub(super) fn check_text(clause: &str) -> String {
    let text = unescape_clause(clause);
    let mut toks = tokens(&text);
    rewrite_operators(&mut toks);
    rewrite_regexp_like(&mut toks);
    rewrite_not_regexp(&mut toks);
    rewrite_regexp(&mut toks);
    confine_prefixes(&mut toks);
    render(&toks)
}

/// MySQL 8 writes `CHECK_CLAUSE` with its quotes escaped (`_utf8mb4\'a\'`): a clause whose every
/// quote follows a backslash is undone one level.
fn unescape_clause(clause: &str) -> String {
    let chars: Vec<char> = clause.chars().collect();
    let mut bare = false;
    let mut escaped = false;
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if chars.get(i + 1) == Some(&'\'') {
                    escaped = true;
                }
                i += 2;
                continue;
            }
            '\'' => bare = true,
            _ => {}
        }
        i += 1;
    }
    if bare || !escaped {
        return clause.to_string();
    }
    let mut out = String::with_capacity(clause.len());
    let mut it = clause.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            out.extend(it.next());
        } else {
            out.push(c);
        }
    }
    out
}

/// A token of a MySQL expression.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A backtick-quoted identifier, unquoted.
    Ident(String),
    /// A string literal's value.
    Str(String),
    /// A keyword, a function's name or an unquoted identifier.
    Word(String),
    /// A number, an operator or punctuation.
    Other(String),
}

impl Tok {
    fn is_word(&self, word: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(word))
    }

    fn is(&self, text: &str) -> bool {
        matches!(self, Tok::Other(o) if o == text)
    }
}

/// The operators of more than one character MySQL prints.
const OPERATORS: [&str; 10] = ["<=>", ">=", "<=", "<>", "!=", "&&", "||", ":=", "<<", ">>"];

/// The tokens of a MySQL expression.
fn tokens(text: &str) -> Vec<Tok> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '`' {
            let mut name = String::new();
            i += 1;
            while i < chars.len() {
                if chars[i] == '`' {
                    if chars.get(i + 1) == Some(&'`') {
                        name.push('`');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                name.push(chars[i]);
                i += 1;
            }
            out.push(Tok::Ident(name));
        } else if c == '\'' || c == '"' {
            let (value, next) = mysql_string(&chars, i);
            out.push(Tok::Str(value));
            i = next;
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            let number = c.is_ascii_digit();
            while i < chars.len() {
                let d = chars[i];
                let exponent_sign =
                    number && (d == '-' || d == '+') && matches!(chars.get(i - 1), Some('e' | 'E'));
                let in_number = number && (d == '.' || exponent_sign);
                if d.is_alphanumeric() || d == '_' || d == '$' || in_number {
                    i += 1;
                } else {
                    break;
                }
            }
            let word: String = chars[start..i].iter().collect();
            let quote_follows = matches!(chars.get(i), Some('\'' | '"'));
            if word.starts_with('_') && quote_follows {
                // A character set introducer (`_utf8mb4'a'`): the string alone.
            } else if number {
                out.push(Tok::Other(word));
            } else {
                out.push(Tok::Word(word));
            }
        } else if c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == 'e') {
                i += 1;
            }
            out.push(Tok::Other(chars[start..i].iter().collect()));
        } else {
            let rest: String = chars[i..chars.len().min(i + 3)].iter().collect();
            let op = OPERATORS
                .iter()
                .find(|op| rest.starts_with(**op))
                .map_or_else(|| c.to_string(), |op| op.to_string());
            i += op.chars().count();
            out.push(Tok::Other(op));
        }
    }
    out
}

/// A MySQL string literal starting at `start` (its quote): its value, with `''` and the
/// backslash escapes undone (`\%` and `\_` kept, as MySQL keeps them for `LIKE`), and where it
/// ends.
fn mysql_string(chars: &[char], start: usize) -> (String, usize) {
    let q = chars[start];
    let mut value = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        let c = chars[i];
        if c == q {
            if chars.get(i + 1) == Some(&q) {
                value.push(q);
                i += 2;
                continue;
            }
            return (value, i + 1);
        }
        if c == '\\' {
            match chars.get(i + 1) {
                Some('n') => value.push('\n'),
                Some('t') => value.push('\t'),
                Some('r') => value.push('\r'),
                Some('0') => value.push('\0'),
                Some('b') => value.push('\u{8}'),
                Some('Z') => value.push('\u{1a}'),
                Some(e @ ('%' | '_')) => {
                    value.push('\\');
                    value.push(*e);
                }
                Some(e) => value.push(*e),
                None => value.push('\\'),
            }
            i += 2;
            continue;
        }
        value.push(c);
        i += 1;
    }
    (value, i)
}

/// `!(…)` as `NOT (…)`, `&&` as `AND`.
fn rewrite_operators(toks: &mut [Tok]) {
    for i in 0..toks.len() {
        if toks[i].is("!") && toks.get(i + 1).is_some_and(|t| t.is("(")) {
            toks[i] = Tok::Word("NOT".into());
        } else if toks[i].is("&&") {
            toks[i] = Tok::Word("AND".into());
        }
    }
}

/// MySQL 8's `regexp_like(x, 'p')` as `x REGEXP 'p'`.
fn rewrite_regexp_like(toks: &mut Vec<Tok>) {
    let mut i = 0;
    while i + 5 < toks.len() {
        if toks[i].is_word("regexp_like")
            && toks[i + 1].is("(")
            && matches!(toks[i + 2], Tok::Ident(_) | Tok::Word(_))
            && toks[i + 3].is(",")
            && matches!(toks[i + 4], Tok::Str(_))
            && toks[i + 5].is(")")
        {
            let column = toks[i + 2].clone();
            let pattern = toks[i + 4].clone();
            toks.splice(
                i..i + 6,
                [
                    Tok::Other("(".into()),
                    column,
                    Tok::Word("REGEXP".into()),
                    pattern,
                    Tok::Other(")".into()),
                ],
            );
        }
        i += 1;
    }
}

/// `NOT (x REGEXP 'p')` (MariaDB prints `x NOT REGEXP 'p'` as `!(x regexp 'p')`, MySQL 8 as
/// `not(regexp_like(x, 'p'))`) as `x NOT REGEXP 'p'`; `RLIKE` read as `REGEXP`.
fn rewrite_not_regexp(toks: &mut Vec<Tok>) {
    for t in toks.iter_mut() {
        if t.is_word("rlike") {
            *t = Tok::Word("REGEXP".into());
        }
    }
    let mut i = 0;
    while i < toks.len() {
        if toks[i].is_word("not") {
            let mut open = 0;
            while toks.get(i + 1 + open).is_some_and(|t| t.is("(")) {
                open += 1;
            }
            let at = i + 1 + open;
            let shape = open > 0
                && matches!(toks.get(at), Some(Tok::Ident(_) | Tok::Word(_)))
                && toks.get(at + 1).is_some_and(|t| t.is_word("regexp"))
                && matches!(toks.get(at + 2), Some(Tok::Str(_)))
                && (0..open).all(|k| toks.get(at + 3 + k).is_some_and(|t| t.is(")")));
            if shape {
                let column = toks[at].clone();
                let pattern = toks[at + 2].clone();
                toks.splice(
                    i..at + 3 + open,
                    [
                        Tok::Other("(".into()),
                        column,
                        Tok::Word("NOT".into()),
                        Tok::Word("REGEXP".into()),
                        pattern,
                        Tok::Other(")".into()),
                    ],
                );
            }
        }
        i += 1;
    }
}

/// `x REGEXP 'p'` as `x ~ 'p'`; `x NOT REGEXP '[^set]'` as `x NOT GLOB '*[^set]*'`, other
/// `NOT REGEXP`s as `!~`.
fn rewrite_regexp(toks: &mut Vec<Tok>) {
    let mut i = 0;
    while i < toks.len() {
        if toks[i].is_word("not") && toks.get(i + 1).is_some_and(|t| t.is_word("regexp")) {
            let set = match toks.get(i + 2) {
                Some(Tok::Str(p)) => only_set(p),
                _ => None,
            };
            match set {
                Some(set) => {
                    toks.splice(
                        i..i + 3,
                        [
                            Tok::Word("NOT".into()),
                            Tok::Word("GLOB".into()),
                            Tok::Str(format!("*[^{set}]*")),
                        ],
                    );
                }
                None => {
                    toks.splice(i..i + 2, [Tok::Other("!~".into())]);
                }
            }
        } else if toks[i].is_word("regexp") {
            toks[i] = Tok::Other("~".into());
        }
        i += 1;
    }
}

/// The set of `[^set]`, a pattern matching any character outside it (its negation says every
/// character is inside it).
fn only_set(pattern: &str) -> Option<&str> {
    pattern
        .strip_prefix("[^")?
        .strip_suffix(']')
        .filter(|set| !set.is_empty() && !set.contains(']') && !set.contains("[:"))
}

/// In a check without `OR`: a column's `~ '^prefix'` (anchored at its start only) and its
/// `NOT GLOB '*[^set]*'` together as `~ '^prefix[set]*$'`.
fn confine_prefixes(toks: &mut [Tok]) {
    if toks.iter().any(|t| t.is_word("or") || t.is("||")) {
        return;
    }
    let mut sets: Vec<(String, String)> = Vec::new();
    for w in toks.windows(4) {
        if let [Tok::Ident(c), not, glob, Tok::Str(g)] = w
            && not.is_word("not")
            && glob.is_word("glob")
            && let Some(set) = g.strip_prefix("*[^").and_then(|s| s.strip_suffix("]*"))
        {
            sets.push((c.clone(), set.to_string()));
        }
    }
    for i in 0..toks.len().saturating_sub(2) {
        let (Tok::Ident(c), Tok::Str(p)) = (&toks[i], &toks[i + 2]) else {
            continue;
        };
        if !toks[i + 1].is("~") {
            continue;
        }
        let Some((_, set)) = sets.iter().find(|(column, _)| column == c) else {
            continue;
        };
        let open_end = p.starts_with('^') && !p.ends_with('$') && !p.ends_with('\\');
        if open_end && !p.contains('|') {
            toks[i + 2] = Tok::Str(format!("{p}[{set}]*$"));
        }
    }
}

/// The tokens as text: identifiers in double quotes, strings in single quotes.
fn render(toks: &[Tok]) -> String {
    let mut out = String::new();
    let mut after_open = true;
    for t in toks {
        let text = match t {
            Tok::Ident(name) => quote_ident(name),
            Tok::Str(value) => quote_literal(value),
            Tok::Word(w) | Tok::Other(w) => w.clone(),
        };
        let tight = after_open || t.is(")") || t.is(",");
        if !tight {
            out.push(' ');
        }
        out.push_str(&text);
        after_open = t.is("(");
    }
    out
}
