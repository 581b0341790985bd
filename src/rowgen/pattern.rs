//! Strings that match a pattern of a CHECK constraint: the subset of PostgreSQL's regular
//! expressions that column checks use (anchors, literals, escapes, bracket expressions with
//! ranges and `[:class:]`es, groups, alternation, `?`, `*`, `+`, `{n,m}`), and `LIKE` patterns.

use rand::RngExt;
use sqlx::types::JsonValue;

use crate::factory::BuildRng;

#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// One of these characters.
    Class(Vec<char>),
    Seq(Vec<Node>),
    Alt(Vec<Node>),
    Repeat(Box<Node>, usize, Option<usize>),
    /// `^`, `$` and the other zero-width assertions.
    Empty,
}

/// A parsed regular expression, and whether it is anchored at its end (a string matching it may
/// then not be extended).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Regex {
    root: Node,
    anchored_end: bool,
}

/// The characters generated values are drawn from: printable ASCII.
fn universe() -> impl Iterator<Item = char> {
    (0x20u8..0x7f).map(char::from)
}

fn posix_class(name: &str) -> Option<Vec<char>> {
    let test: fn(&char) -> bool = match name {
        "alpha" => char::is_ascii_alphabetic,
        "digit" => char::is_ascii_digit,
        "alnum" => char::is_ascii_alphanumeric,
        "upper" => char::is_ascii_uppercase,
        "lower" => char::is_ascii_lowercase,
        "space" => |c| c.is_ascii_whitespace(),
        "xdigit" => char::is_ascii_hexdigit,
        "punct" => char::is_ascii_punctuation,
        "word" => |c| c.is_ascii_alphanumeric() || *c == '_',
        "print" | "graph" => |c| !c.is_ascii_control(),
        "blank" => |c| *c == ' ' || *c == '\t',
        _ => return None,
    };
    let mut chars: Vec<char> = universe().filter(test).collect();
    if matches!(name, "space" | "blank") {
        chars.push('\t');
    }
    Some(chars)
}

/// The class of `\d`, `\w`, `\s` and their negations.
fn escape_class(c: char) -> Option<(Vec<char>, bool)> {
    let (name, negated) = match c {
        'd' => ("digit", false),
        'w' => ("word", false),
        's' => ("space", false),
        'D' => ("digit", true),
        'W' => ("word", true),
        'S' => ("space", true),
        _ => return None,
    };
    posix_class(name).map(|chars| (chars, negated))
}

fn negate(set: &[char]) -> Vec<char> {
    universe().filter(|c| !set.contains(c)).collect()
}

/// Prefers letters and digits when a class allows them, so values stay readable.
fn readable(mut set: Vec<char>) -> Vec<char> {
    let alnum: Vec<char> = set
        .iter()
        .copied()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    if alnum.is_empty() {
        set.dedup();
        set
    } else {
        alnum
    }
}

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    pattern: &'a str,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> String {
        format!("{what} at position {} of `{}`", self.pos, self.pattern)
    }

    fn alternation(&mut self) -> Result<Node, String> {
        let mut branches = vec![self.sequence()?];
        while self.chars.get(self.pos) == Some(&'|') {
            self.pos += 1;
            branches.push(self.sequence()?);
        }
        Ok(if branches.len() == 1 {
            branches.remove(0)
        } else {
            Node::Alt(branches)
        })
    }

    fn sequence(&mut self) -> Result<Node, String> {
        let mut items = Vec::new();
        while let Some(&c) = self.chars.get(self.pos) {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            let atom = self.quantifier(atom)?;
            items.push(atom);
        }
        Ok(Node::Seq(items))
    }

    fn atom(&mut self) -> Result<Node, String> {
        let c = self.chars[self.pos];
        self.pos += 1;
        match c {
            '^' | '$' => Ok(Node::Empty),
            '.' => Ok(Node::Class(
                universe().filter(char::is_ascii_alphanumeric).collect(),
            )),
            '(' => {
                if self.chars.get(self.pos) == Some(&'?') {
                    // (?:…) and the like: only non-capturing groups are supported.
                    if self.chars.get(self.pos + 1) == Some(&':') {
                        self.pos += 2;
                    } else {
                        return Err(self.err("unsupported group"));
                    }
                }
                let inner = self.alternation()?;
                if self.chars.get(self.pos) != Some(&')') {
                    return Err(self.err("unclosed group"));
                }
                self.pos += 1;
                Ok(inner)
            }
            '[' => self.bracket(),
            '\\' => {
                let Some(&e) = self.chars.get(self.pos) else {
                    return Err(self.err("trailing backslash"));
                };
                self.pos += 1;
                if let Some((set, negated)) = escape_class(e) {
                    return Ok(Node::Class(if negated { negate(&set) } else { set }));
                }
                match e {
                    'm' | 'M' | 'y' | 'Y' | 'A' | 'Z' | 'b' | 'B' => Ok(Node::Empty),
                    'n' => Ok(Node::Class(vec!['\n'])),
                    't' => Ok(Node::Class(vec!['\t'])),
                    e if e.is_ascii_digit() => Err(self.err("back-references are not supported")),
                    e => Ok(Node::Class(vec![e])),
                }
            }
            '*' | '+' | '?' | '{' => Err(self.err("quantifier without anything to repeat")),
            c => Ok(Node::Class(vec![c])),
        }
    }

    fn bracket(&mut self) -> Result<Node, String> {
        let mut negated = false;
        if self.chars.get(self.pos) == Some(&'^') {
            negated = true;
            self.pos += 1;
        }
        let mut set = Vec::new();
        let mut first = true;
        loop {
            let Some(&c) = self.chars.get(self.pos) else {
                return Err(self.err("unclosed bracket expression"));
            };
            if c == ']' && !first {
                self.pos += 1;
                break;
            }
            first = false;
            if c == '[' && self.chars.get(self.pos + 1) == Some(&':') {
                let rest: String = self.chars[self.pos + 2..].iter().collect();
                let Some(end) = rest.find(":]") else {
                    return Err(self.err("unclosed character class"));
                };
                let name = &rest[..end];
                let chars = posix_class(name)
                    .ok_or_else(|| self.err(&format!("unknown class [:{name}:]")))?;
                set.extend(chars);
                self.pos += 2 + end + 2;
                continue;
            }
            let lo = if c == '\\' {
                self.pos += 1;
                let Some(&e) = self.chars.get(self.pos) else {
                    return Err(self.err("trailing backslash"));
                };
                if let Some((chars, neg)) = escape_class(e) {
                    set.extend(if neg { negate(&chars) } else { chars });
                    self.pos += 1;
                    continue;
                }
                e
            } else {
                c
            };
            self.pos += 1;
            if self.chars.get(self.pos) == Some(&'-')
                && self.chars.get(self.pos + 1).is_some_and(|n| *n != ']')
            {
                let hi = self.chars[self.pos + 1];
                self.pos += 2;
                if hi < lo {
                    return Err(self.err("invalid range"));
                }
                let in_ascii: Vec<char> = universe().filter(|x| *x >= lo && *x <= hi).collect();
                if in_ascii.is_empty() {
                    set.push(lo);
                } else {
                    set.extend(in_ascii);
                }
            } else {
                set.push(lo);
            }
        }
        let set = if negated { negate(&set) } else { set };
        if set.is_empty() {
            return Err(self.err("empty bracket expression"));
        }
        Ok(Node::Class(set))
    }

    fn quantifier(&mut self, atom: Node) -> Result<Node, String> {
        let (min, max) = match self.chars.get(self.pos) {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => {
                let rest: String = self.chars[self.pos + 1..].iter().collect();
                let Some(end) = rest.find('}') else {
                    return Err(self.err("unclosed {"));
                };
                let body = &rest[..end];
                let parse = |s: &str| s.trim().parse::<usize>().map_err(|_| self.err("bad {n,m}"));
                let (min, max) = match body.split_once(',') {
                    Some((a, "")) => (parse(a)?, None),
                    Some((a, b)) => (parse(a)?, Some(parse(b)?)),
                    None => {
                        let n = parse(body)?;
                        (n, Some(n))
                    }
                };
                self.pos += end + 1;
                (min, max)
            }
            _ => return Ok(atom),
        };
        self.pos += 1;
        // A lazy or possessive suffix changes nothing for generation.
        if matches!(self.chars.get(self.pos), Some('?' | '+')) {
            self.pos += 1;
        }
        Ok(Node::Repeat(Box::new(atom), min, max))
    }
}

impl Regex {
    /// Parses a PostgreSQL regular expression; an error for what generation does not support.
    pub(crate) fn parse(pattern: &str) -> Result<Regex, String> {
        // ARE options prefix (`(?i)…`) and the `***:` director are not supported.
        let mut p = Parser {
            chars: pattern.chars().collect(),
            pos: 0,
            pattern,
        };
        let root = p.alternation()?;
        if p.pos < p.chars.len() {
            return Err(p.err("unbalanced )"));
        }
        let anchored_end = pattern.ends_with('$') && !pattern.ends_with("\\$");
        Ok(Regex { root, anchored_end })
    }

    /// The parsed pattern as JSON, for the plan file ([`from_json`](Self::from_json) reads it).
    pub(crate) fn to_json(&self) -> JsonValue {
        json_object([
            ("root", node_to_json(&self.root)),
            ("anchored_end", JsonValue::Bool(self.anchored_end)),
        ])
    }

    /// A pattern [`to_json`](Self::to_json) wrote.
    pub(crate) fn from_json(value: &JsonValue) -> Result<Regex, String> {
        let root = node_from_json(value.get("root").ok_or("a pattern without its root")?)?;
        let anchored_end = value
            .get("anchored_end")
            .and_then(JsonValue::as_bool)
            .ok_or("a pattern without anchored_end")?;
        Ok(Regex { root, anchored_end })
    }

    /// Whether the pattern is anchored at its end.
    pub(crate) fn anchored_end(&self) -> bool {
        self.anchored_end
    }

    /// A matching string, repetitions at most `cap` beyond their minimum; `long` draws them
    /// from the upper half, for values that must not repeat.
    pub(crate) fn generate(&self, rng: &mut BuildRng, cap: usize, long: bool) -> String {
        let mut out = String::new();
        gen_node(&self.root, rng, cap, long, &mut out);
        out
    }

    /// A matching string of `min_len` to `max_len` characters, if the generator finds one.
    pub(crate) fn generate_within(
        &self,
        rng: &mut BuildRng,
        min_len: usize,
        max_len: Option<usize>,
        long: bool,
    ) -> Option<String> {
        for cap in [8usize, 8, 4, 2, 1, 0] {
            for _ in 0..4 {
                let s = self.generate(rng, cap, long);
                let n = s.chars().count();
                if n >= min_len && max_len.is_none_or(|m| n <= m) {
                    return Some(s);
                }
            }
        }
        None
    }
}

fn gen_node(node: &Node, rng: &mut BuildRng, cap: usize, long: bool, out: &mut String) {
    match node {
        Node::Empty => {}
        Node::Class(set) => {
            let set = readable(set.clone());
            if !set.is_empty() {
                out.push(set[rng.random_range(0..set.len())]);
            }
        }
        Node::Seq(items) => items.iter().for_each(|n| gen_node(n, rng, cap, long, out)),
        Node::Alt(branches) => {
            if !branches.is_empty() {
                gen_node(
                    &branches[rng.random_range(0..branches.len())],
                    rng,
                    cap,
                    long,
                    out,
                );
            }
        }
        Node::Repeat(inner, min, max) => {
            let hi = max.unwrap_or(usize::MAX).min(min.saturating_add(cap));
            let lo = if long {
                min + (hi - min).div_ceil(2)
            } else {
                *min
            };
            let count = if hi <= lo {
                hi.max(*min)
            } else {
                rng.random_range(lo..=hi)
            };
            for _ in 0..count {
                gen_node(inner, rng, cap, long, out);
            }
        }
    }
}

/// A string matching a `LIKE` pattern: `%` becomes `fill`, `_` one letter.
pub(crate) fn like(pattern: &str, fill: &str) -> String {
    let mut out = String::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        match c {
            '%' => out.push_str(fill),
            '_' => out.push('x'),
            '\\' => {
                if let Some(n) = it.next() {
                    out.push(n);
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn json_object<const N: usize>(fields: [(&str, JsonValue); N]) -> JsonValue {
    JsonValue::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// `{"class": "abc"}`, `{"seq": […]}`, `{"alt": […]}`, `{"repeat": …, "min": 1, "max": null}`,
/// `"empty"`.
fn node_to_json(node: &Node) -> JsonValue {
    let list = |nodes: &[Node]| JsonValue::Array(nodes.iter().map(node_to_json).collect());
    match node {
        Node::Class(chars) => json_object([("class", JsonValue::String(chars.iter().collect()))]),
        Node::Seq(nodes) => json_object([("seq", list(nodes))]),
        Node::Alt(nodes) => json_object([("alt", list(nodes))]),
        Node::Repeat(inner, min, max) => json_object([
            ("repeat", node_to_json(inner)),
            ("min", JsonValue::from(*min)),
            ("max", max.map_or(JsonValue::Null, JsonValue::from)),
        ]),
        Node::Empty => JsonValue::String("empty".into()),
    }
}

fn node_from_json(value: &JsonValue) -> Result<Node, String> {
    let list = |v: &JsonValue| -> Result<Vec<Node>, String> {
        v.as_array()
            .ok_or("a pattern's list that is not an array")?
            .iter()
            .map(node_from_json)
            .collect()
    };
    let count = |v: Option<&JsonValue>| -> Option<usize> {
        v.and_then(JsonValue::as_u64)
            .and_then(|n| usize::try_from(n).ok())
    };
    if value.as_str() == Some("empty") {
        return Ok(Node::Empty);
    }
    if let Some(chars) = value.get("class").and_then(JsonValue::as_str) {
        return Ok(Node::Class(chars.chars().collect()));
    }
    if let Some(v) = value.get("seq") {
        return list(v).map(Node::Seq);
    }
    if let Some(v) = value.get("alt") {
        return list(v).map(Node::Alt);
    }
    if let Some(inner) = value.get("repeat") {
        let min = count(value.get("min")).ok_or("a repetition without its minimum")?;
        let max = match value.get("max") {
            None | Some(JsonValue::Null) => None,
            v => Some(count(v).ok_or("a repetition whose maximum is not a count")?),
        };
        return Ok(Node::Repeat(Box::new(node_from_json(inner)?), min, max));
    }
    Err(format!("an unknown part of a pattern: {value}"))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn a_parsed_pattern_survives_json() {
        for p in [
            "^[a-z0-9][a-z0-9-]*$",
            "^(INV|CR)-[0-9]{4,6}(-[A-Z])?$",
            "[[:alpha:]]+ x*",
            "^a|b$",
        ] {
            let re = Regex::parse(p).unwrap();
            let back = Regex::from_json(&re.to_json().to_string().parse().unwrap()).unwrap();
            assert_eq!(back, re, "{p}");
        }
        let err =
            Regex::from_json(&r#"{"root": {"star": []}, "anchored_end": true}"#.parse().unwrap())
                .unwrap_err();
        assert!(err.contains("unknown part of a pattern"), "{err}");
    }

    fn sample(pattern: &str) -> Vec<String> {
        let re = Regex::parse(pattern).unwrap();
        let mut rng = BuildRng::seed_from_u64(7);
        (0..50)
            .map(|_| re.generate_within(&mut rng, 0, Some(40), false).unwrap())
            .collect()
    }

    #[test]
    fn generates_matches_of_the_reference_patterns() {
        for s in sample("^[a-z0-9][a-z0-9-]*$") {
            assert!(!s.is_empty() && !s.starts_with('-'), "{s}");
            assert!(
                s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            );
        }
        for s in sample("^[A-Z][A-Z0-9]{1,9}$") {
            assert!((2..=10).contains(&s.len()), "{s}");
            assert!(s.chars().next().unwrap().is_ascii_uppercase());
        }
        for s in sample("^#[0-9a-f]{6}$") {
            assert_eq!(s.len(), 7);
            assert!(s[1..].chars().all(|c| c.is_ascii_hexdigit()), "{s}");
        }
        for s in sample("^[^@[:space:]]+@[^@[:space:]]+$") {
            let (a, b) = s.split_once('@').unwrap();
            assert!(!a.is_empty() && !b.is_empty() && !b.contains('@'), "{s}");
            assert!(!s.contains(' '));
        }
        for s in sample("^https?://") {
            assert!(s == "http://" || s == "https://", "{s}");
        }
        for s in sample("^(foo|ba(r|z))\\.\\d{2,3}$") {
            assert!(
                s.starts_with("foo.") || s.starts_with("bar.") || s.starts_with("baz."),
                "{s}"
            );
        }
        assert!(!Regex::parse("^https?://").unwrap().anchored_end());
    }

    #[test]
    fn refuses_what_it_cannot_generate() {
        assert!(Regex::parse("(a)\\1").is_err());
        assert!(Regex::parse("(?=a)").is_err());
        assert!(Regex::parse("[a-").is_err());
        assert_eq!(like("INV-%-__", "7"), "INV-7-xx");
    }
}
