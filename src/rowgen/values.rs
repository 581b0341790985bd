//! Values for one column, from its type and what the checks ask of it.
//!
//! Every value travels to the server as JSON inside one `jsonb` parameter and is read with the
//! column's own input function (`jsonb_populate_recordset`), so a generator only has to produce
//! the text PostgreSQL accepts for the type: enums, domains, arrays, `inet`, `numeric`, dates and
//! `jsonb` all come out right without a Rust type per PostgreSQL type.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration as Days, NaiveDate, Utc};
use fake::Fake;
use rand::RngExt;
use sqlx::types::JsonValue;

use super::pattern::{Regex, like};
use crate::factory::BuildRng;
#[path = "values_build.rs"]
mod build;

/// One generated value, typed enough to order two of them (`due_on >= issued_on`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Int(i64),
    Float(f64),
    /// Exact text for the type's input function (`numeric`, `uuid`, enums, …).
    Text(String),
    Bool(bool),
    Date(NaiveDate),
    Timestamp(DateTime<Utc>),
    Json(JsonValue),
}

impl Value {
    pub(crate) fn into_json(self) -> JsonValue {
        match self {
            Value::Int(i) => JsonValue::from(i),
            Value::Float(f) => JsonValue::from(f),
            Value::Text(s) => JsonValue::String(s),
            Value::Bool(b) => JsonValue::Bool(b),
            Value::Date(d) => JsonValue::String(d.format("%Y-%m-%d").to_string()),
            Value::Timestamp(t) => JsonValue::String(t.to_rfc3339()),
            Value::Json(j) => j,
        }
    }

    /// Makes `self` greater than (or equal to) `lesser`, when both are of an ordered kind.
    #[allow(
        clippy::collapsible_match,
        reason = "numbers already in order must stop at their arm, not reach the text arm"
    )]
    pub(crate) fn order_after(&mut self, lesser: &Value, strict: bool, rng: &mut BuildRng) {
        let step = rng.random_range(i64::from(strict)..=30);
        match (&*self, lesser) {
            (Value::Int(a), Value::Int(b)) if (*a < *b) || (strict && a == b) => {
                *self = Value::Int(b.saturating_add(step.max(1)));
            }
            (Value::Float(a), Value::Float(b)) if (*a < *b) || (strict && a == b) => {
                *self = Value::Float(b + step.max(1) as f64);
            }
            (Value::Date(a), Value::Date(b)) if (*a < *b) || (strict && a == b) => {
                *self = Value::Date(*b + Days::days(step.max(i64::from(strict))));
            }
            (Value::Timestamp(a), Value::Timestamp(b)) if (*a < *b) || (strict && a == b) => {
                *self = Value::Timestamp(*b + Days::hours(step.max(1)));
            }
            // A column typed as text (SQLite's dates are) after a date or a time: the same kind.
            (Value::Text(_), Value::Date(b)) => {
                *self = Value::Date(*b + Days::days(step.max(i64::from(strict))));
            }
            (Value::Text(_), Value::Timestamp(b)) => {
                *self = Value::Timestamp(*b + Days::hours(step.max(1)));
            }
            // Numbers written as text (numeric): ordered as numbers, keeping the lesser's
            // decimals. Not collapsed into the guard: numbers already in order must not fall
            // through to the text arm, which compares them as strings.
            (Value::Text(a), Value::Text(b))
                if let (Ok(x), Ok(y)) = (a.trim().parse::<f64>(), b.trim().parse::<f64>()) =>
            {
                if x < y || (strict && x == y) {
                    let decimals = b.split_once('.').map_or(0, |(_, d)| d.len());
                    let next = y + step.max(1) as f64;
                    *self = Value::Text(format!("{next:.decimals$}"));
                }
            }
            // Text after text: the lesser with a character added sorts after it.
            (Value::Text(a), Value::Text(b)) if (a < b) || (strict && a == b) => {
                *self = Value::Text(format!("{b}~"));
            }
            _ => {}
        }
    }
}

/// How values of a column are made.
#[derive(Debug)]
pub(crate) enum Gen {
    Int {
        lo: i64,
        hi: i64,
        /// In a unique key: values count up from `next` by `step` (wrapping in `lo..=hi`).
        unique: Option<AtomicI64>,
        /// 1, or the number of plans drawing in turns ([`RowPlan::interleave`]).
        ///
        /// [`RowPlan::interleave`]: super::RowPlan::interleave
        step: i64,
    },
    Decimal {
        lo: f64,
        hi: f64,
        scale: u32,
    },
    Float {
        lo: f64,
        hi: f64,
    },
    Bool,
    Text {
        min_len: usize,
        max_len: Option<usize>,
    },
    OneOf(Vec<String>),
    Regex {
        re: Regex,
        min_len: usize,
        max_len: Option<usize>,
        /// In a unique key: long repetitions, so values rarely repeat.
        unique: bool,
    },
    Like {
        pattern: String,
        max_len: Option<usize>,
    },
    Uuid,
    Date {
        lo: NaiveDate,
        hi: NaiveDate,
    },
    Timestamp {
        lo: DateTime<Utc>,
        hi: DateTime<Utc>,
    },
    Time,
    Interval,
    Json,
    Bytea,
    Inet,
    Cidr,
    MacAddr,
    TsVector,
    Xml,
    Bits(usize),
    Range(&'static str),
    Array(Box<Gen>),
    EmptyArray,
}

/// The draw of one value: the build's random stream and a number unique in the run.
pub(crate) struct Draw<'a> {
    pub(crate) rng: &'a mut BuildRng,
    pub(crate) seq: u64,
}

/// `(n)` of `character varying(16)`, `character(7)`, `bit(8)`; `(p,s)` of `numeric(12,2)`.
fn type_modifier(sql_type: &str) -> Option<(usize, Option<usize>)> {
    let inner = sql_type.split_once('(')?.1.split_once(')')?.0;
    match inner.split_once(',') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok())),
        None => Some((inner.trim().parse().ok()?, None)),
    }
}

fn epoch_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 1, 1).unwrap_or_default()
}

fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()
}

impl Gen {
    /// Makes a unique integer counter draw the `part`-th of every `parts` of its values (see
    /// [`RowPlan::interleave`](super::RowPlan::interleave)); the other generators draw from
    /// the plan's sequence, or at random.
    pub(crate) fn interleave(&mut self, part: i64, parts: i64) {
        match self {
            Gen::Int {
                unique: Some(next),
                step,
                ..
            } => {
                let n = next.get_mut();
                *n = n.wrapping_add(part.wrapping_mul(*step));
                *step = step.wrapping_mul(parts);
            }
            Gen::Array(element) => element.interleave(part, parts),
            _ => {}
        }
    }

    /// Draws one value.
    pub(crate) fn draw(&self, d: &mut Draw<'_>) -> Value {
        let rng = &mut *d.rng;
        match self {
            Gen::Int {
                lo,
                hi,
                unique,
                step,
            } => match unique {
                Some(next) => {
                    let span = (*hi as i128 - *lo as i128 + 1).max(1);
                    let n = next.fetch_add(*step, Ordering::Relaxed) as i128;
                    Value::Int((*lo as i128 + (n - *lo as i128).rem_euclid(span)) as i64)
                }
                None => {
                    let (a, b) = friendly_range(*lo, *hi);
                    Value::Int(rng.random_range(a..=b))
                }
            },
            Gen::Decimal { lo, hi, scale } => {
                let (a, b) = (lo.max(0.0).min(*hi), hi.min(lo.max(0.0) + 10_000.0));
                let (a, b) = if a <= b { (a, b) } else { (*lo, *hi) };
                let v = if a < b { rng.random_range(a..=b) } else { a };
                Value::Text(format!("{v:.prec$}", prec = *scale as usize))
            }
            Gen::Float { lo, hi } => {
                let (a, b) = (lo.max(0.0).min(*hi), hi.min(lo.max(0.0) + 10_000.0));
                Value::Float(if a < b { rng.random_range(a..=b) } else { a })
            }
            Gen::Bool => Value::Bool(rng.random_bool(0.5)),
            Gen::Text { min_len, max_len } => Value::Text(text(rng, d.seq, *min_len, *max_len)),
            Gen::OneOf(values) => Value::Text(values[rng.random_range(0..values.len())].clone()),
            Gen::Regex {
                re,
                min_len,
                max_len,
                unique,
            } => {
                let mut s = re
                    .generate_within(rng, *min_len, *max_len, *unique)
                    .unwrap_or_default();
                if !re.anchored_end() {
                    // Free to go on after the match: make the value unique in the run.
                    let suffix = base36(d.seq);
                    if max_len.is_none_or(|m| s.chars().count() + suffix.len() <= m) {
                        s.push_str(&suffix);
                    }
                }
                Value::Text(s)
            }
            Gen::Like { pattern, max_len } => {
                let s = like(pattern, &base36(d.seq));
                Value::Text(match max_len {
                    Some(m) => s.chars().take(*m).collect(),
                    None => s,
                })
            }
            Gen::Uuid => {
                let mut bytes: [u8; 16] = rng.random();
                bytes[6] = (bytes[6] & 0x0f) | 0x40;
                bytes[8] = (bytes[8] & 0x3f) | 0x80;
                Value::Text(uuid::Uuid::from_bytes(bytes).to_string())
            }
            Gen::Date { lo, hi } => {
                let span = (*hi - *lo).num_days().max(0);
                Value::Date(*lo + Days::days(rng.random_range(0..=span)))
            }
            Gen::Timestamp { lo, hi } => {
                let span = (*hi - *lo).num_seconds().max(0);
                Value::Timestamp(*lo + Days::seconds(rng.random_range(0..=span)))
            }
            Gen::Time => Value::Text(format!(
                "{:02}:{:02}:{:02}",
                rng.random_range(0..24),
                rng.random_range(0..60),
                rng.random_range(0..60)
            )),
            Gen::Interval => Value::Text(format!("{} minutes", rng.random_range(1..10_000))),
            Gen::Json => {
                let word: String = fake::faker::lorem::en::Word().fake_with_rng(rng);
                Value::Json(JsonValue::Object(
                    [
                        ("seedbed".to_string(), JsonValue::from(d.seq)),
                        ("word".to_string(), JsonValue::String(word)),
                    ]
                    .into_iter()
                    .collect(),
                ))
            }
            Gen::Bytea => {
                let bytes: [u8; 8] = rng.random();
                let mut hex = format!("\\x{:016x}", d.seq);
                for b in bytes {
                    hex.push_str(&format!("{b:02x}"));
                }
                Value::Text(hex)
            }
            Gen::Inet => Value::Text(format!(
                "10.{}.{}.{}",
                (d.seq >> 16) & 0xff,
                (d.seq >> 8) & 0xff,
                d.seq & 0xff
            )),
            Gen::Cidr => Value::Text(format!("10.{}.{}.0/24", (d.seq >> 8) & 0xff, d.seq & 0xff)),
            Gen::MacAddr => Value::Text(format!(
                "08:00:2b:{:02x}:{:02x}:{:02x}",
                (d.seq >> 16) & 0xff,
                (d.seq >> 8) & 0xff,
                d.seq & 0xff
            )),
            Gen::TsVector => {
                let words: Vec<String> = fake::faker::lorem::en::Words(2..5).fake_with_rng(rng);
                Value::Text(words.join(" "))
            }
            Gen::Xml => Value::Text(format!("<row n=\"{}\"/>", d.seq)),
            Gen::Bits(n) => Value::Text(
                (0..*n)
                    .map(|_| if rng.random_bool(0.5) { '1' } else { '0' })
                    .collect(),
            ),
            Gen::Range(kind) => {
                let a: i64 = rng.random_range(0..1000);
                let b = a + rng.random_range(1..100);
                Value::Text(match *kind {
                    "daterange" => {
                        let d0 = epoch_date() + Days::days(a);
                        format!("[{d0},{})", d0 + Days::days(b - a))
                    }
                    "tsrange" => {
                        let d0 = epoch_date() + Days::days(a);
                        format!(
                            "[\"{d0} 00:00:00\",\"{} 00:00:00\")",
                            d0 + Days::days(b - a)
                        )
                    }
                    _ => format!("[{a},{b})"),
                })
            }
            Gen::Array(element) => {
                let n = rng.random_range(1..=2);
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(element.draw(d).into_json());
                }
                Value::Json(JsonValue::Array(items))
            }
            Gen::EmptyArray => Value::Json(JsonValue::Array(Vec::new())),
        }
    }
}

/// A range of small, readable numbers inside `lo..=hi`.
fn friendly_range(lo: i64, hi: i64) -> (i64, i64) {
    if lo <= 1 && hi >= 1 {
        (1, hi.min(1000))
    } else if lo > 1 {
        (lo, hi.min(lo.saturating_add(1000)))
    } else {
        (lo.max(hi.saturating_sub(1000)), hi)
    }
}

/// `n` in base 36: short, unique suffixes.
pub(crate) fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// A few words and the run-unique number, fitted to the length bounds.
fn text(rng: &mut BuildRng, seq: u64, min_len: usize, max_len: Option<usize>) -> String {
    let word: String = fake::faker::lorem::en::Word().fake_with_rng(rng);
    let unique = base36(seq);
    let mut s = format!("{word} {unique}");
    if let Some(m) = max_len
        && s.chars().count() > m
    {
        // Keep the unique part: it is what keeps unique columns apart.
        s = if unique.len() <= m {
            unique
        } else {
            unique[unique.len() - m..].to_string()
        };
    }
    while s.chars().count() < min_len {
        s.push('x');
    }
    s
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn numbers_written_as_text_are_ordered_as_numbers() {
        let mut rng = BuildRng::seed_from_u64(3);
        let mut greater = Value::Text("9.50".into());
        greater.order_after(&Value::Text("10.00".into()), true, &mut rng);
        let Value::Text(t) = &greater else {
            panic!("{greater:?}")
        };
        assert!(
            t.parse::<f64>().is_ok_and(|v| v > 10.0)
                && t.split_once('.').is_some_and(|(_, cents)| cents.len() == 2),
            "{t}"
        );
        let mut text = Value::Text("apple".into());
        text.order_after(&Value::Text("banana".into()), false, &mut rng);
        assert_eq!(text, Value::Text("banana~".into()));
    }

    #[test]
    fn globs_become_regexes_whose_values_match_them() {
        use crate::rowgen::pattern::Regex;
        let cases = [
            ("[a-z0-9]*", Some("a-z0-9-"), "^[a-z0-9][a-z0-9-]*$"),
            ("?*@?*", None, "^[a-z0-9][a-z0-9]*@[a-z0-9][a-z0-9]*$"),
            ("[A-Z]*", Some("A-Z0-9"), "^[A-Z][A-Z0-9]*$"),
            ("a.b+[^x]", None, "^a\\.b\\+[^x]$"),
        ];
        let mut rng = BuildRng::seed_from_u64(7);
        for (glob, chars, regex) in cases {
            assert_eq!(build::glob_regex(glob, chars), regex);
            let re = Regex::parse(regex).unwrap();
            for _ in 0..20 {
                let s = re.generate_within(&mut rng, 2, Some(10), true).unwrap();
                assert!((2..=10).contains(&s.chars().count()), "{glob}: {s}");
                assert!(!s.contains(' '), "{glob}: {s}");
            }
        }
    }

    #[test]
    fn text_fits_its_bounds_and_stays_unique() {
        let mut rng = BuildRng::seed_from_u64(1);
        let a = text(&mut rng, 1295, 0, Some(3));
        let b = text(&mut rng, 1296, 0, Some(3));
        assert_eq!((a.as_str(), b.as_str()), ("zz", "100"));
        assert!(text(&mut rng, 5, 12, None).chars().count() >= 12);
        assert_eq!(base36(0), "0");
        assert_eq!(type_modifier("numeric(12,2)"), Some((12, Some(2))));
        assert_eq!(type_modifier("character varying(16)"), Some((16, None)));
    }

    #[test]
    fn ordering_two_values() {
        let mut rng = BuildRng::seed_from_u64(1);
        let d = |s: &str| Value::Date(parse_date(s).unwrap());
        let mut due = d("2025-01-01");
        due.order_after(&d("2025-03-01"), false, &mut rng);
        assert!(matches!(due, Value::Date(x) if x >= parse_date("2025-03-01").unwrap()));
        let mut a = Value::Int(5);
        a.order_after(&Value::Int(5), true, &mut rng);
        assert!(matches!(a, Value::Int(x) if x > 5));
    }
}
