//! Choosing a column's generator from its type, its CHECK rules and what the database holds.

use std::sync::atomic::AtomicI64;

use chrono::{DateTime, Duration as Days, TimeZone, Utc};

use super::{Gen, epoch_date, parse_date, type_modifier};
use crate::rowgen::check::{ColumnRules, Const, Pattern};
use crate::rowgen::pattern::Regex;
use crate::schema::Column;

impl Gen {
    /// The generator for `column`, or why there is none (an unsupported type, or checks that
    /// leave no value).
    pub(crate) fn for_column(
        column: &Column,
        base_type: &str,
        rules: &ColumnRules,
        unique: bool,
        existing_max: Option<i64>,
    ) -> Result<Gen, String> {
        let labels = &column.enum_labels;
        if !labels.is_empty() {
            return one_of(labels.clone(), rules).map(Gen::OneOf);
        }
        if let Some(element) = base_type.strip_prefix('_') {
            let element = Gen::scalar(
                element,
                &column.sql_type,
                &ColumnRules::default(),
                false,
                None,
            );
            return Ok(match element {
                Ok(g) => Gen::Array(Box::new(g)),
                Err(_) => Gen::EmptyArray,
            });
        }
        Gen::scalar(base_type, &column.sql_type, rules, unique, existing_max)
    }

    fn scalar(
        base_type: &str,
        sql_type: &str,
        rules: &ColumnRules,
        unique: bool,
        existing_max: Option<i64>,
    ) -> Result<Gen, String> {
        let modifier = type_modifier(sql_type);
        let text_like = matches!(
            base_type,
            "text" | "varchar" | "bpchar" | "citext" | "name" | "char"
        );
        if rules.json && rules.one_of.is_none() {
            return Ok(Gen::Json);
        }
        if rules.one_of.is_some() {
            // An explicit list wins over every other way of making values.
            let values = rules.one_of.clone().unwrap_or_default();
            return one_of(values, rules).map(Gen::OneOf);
        }
        let int_range = match base_type {
            "int2" => Some((i64::from(i16::MIN), i64::from(i16::MAX))),
            "int4" | "oid" => Some((i64::from(i32::MIN), i64::from(i32::MAX))),
            "int8" => Some((i64::MIN, i64::MAX)),
            _ => None,
        };
        if let Some((tmin, tmax)) = int_range {
            let mut lo = tmin;
            let mut hi = tmax;
            if let Some((n, inclusive)) = number(&rules.lower) {
                let b = if inclusive { n.ceil() } else { n.floor() + 1.0 };
                lo = lo.max(b.clamp(tmin as f64, tmax as f64) as i64);
            }
            if let Some((n, inclusive)) = number(&rules.upper) {
                let b = if inclusive { n.floor() } else { n.ceil() - 1.0 };
                hi = hi.min(b.clamp(tmin as f64, tmax as f64) as i64);
            }
            if lo > hi {
                return Err(format!("its checks allow no value between {lo} and {hi}"));
            }
            let unique = unique.then(|| {
                let start = existing_max.map_or(friendly_start(lo, hi), |m| {
                    m.saturating_add(1).clamp(lo, hi)
                });
                AtomicI64::new(start)
            });
            return Ok(Gen::Int {
                lo,
                hi,
                unique,
                step: 1,
            });
        }
        if matches!(base_type, "numeric" | "float4" | "float8" | "money") {
            let (mut lo, mut hi) = (-1e9_f64, 1e9_f64);
            let mut scale = 2;
            if base_type == "numeric"
                && let Some((p, s)) = modifier
            {
                let s = s.unwrap_or(0);
                scale = s as u32;
                let limit = 10f64.powi((p.saturating_sub(s)) as i32) - 10f64.powi(-(s as i32));
                lo = lo.max(-limit);
                hi = hi.min(limit);
            }
            let step = 10f64.powi(-(scale as i32));
            if let Some((n, inclusive)) = number(&rules.lower) {
                lo = lo.max(if inclusive { n } else { n + step });
            }
            if let Some((n, inclusive)) = number(&rules.upper) {
                hi = hi.min(if inclusive { n } else { n - step });
            }
            if lo > hi {
                return Err(format!("its checks allow no value between {lo} and {hi}"));
            }
            return Ok(if matches!(base_type, "float4" | "float8") {
                Gen::Float { lo, hi }
            } else {
                Gen::Decimal { lo, hi, scale }
            });
        }
        if text_like {
            let type_max = match base_type {
                "varchar" | "bpchar" => modifier.map(|m| m.0),
                "char" => Some(1),
                "name" => Some(63),
                _ => None,
            };
            let max_len = match (type_max, rules.max_len) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let min_len = rules.min_len.unwrap_or(0);
            if max_len.is_some_and(|m| m < min_len) {
                return Err(format!(
                    "its checks want at least {min_len} characters, its type allows {}",
                    max_len.unwrap_or_default()
                ));
            }
            // The first pattern decides; the probe tells whether the others accept its values.
            // SQLite's GLOBs, and the characters its checks allow, as a regular expression.
            let glob = match (rules.patterns.first(), &rules.chars) {
                (Some(Pattern::Glob(g)), chars) => {
                    Some(Pattern::Regex(glob_regex(g, chars.as_deref())))
                }
                (None, Some(chars)) => Some(Pattern::Regex(format!("^[{chars}]+$"))),
                _ => None,
            };
            match glob.as_ref().or(rules.patterns.first()) {
                Some(Pattern::Regex(r)) => {
                    let re = Regex::parse(r)
                        .map_err(|e| format!("cannot make values matching {r:?}: {e}"))?;
                    return Ok(Gen::Regex {
                        re,
                        min_len,
                        max_len,
                        unique,
                    });
                }
                Some(Pattern::Like(l)) => {
                    return Ok(Gen::Like {
                        pattern: l.clone(),
                        max_len,
                    });
                }
                Some(Pattern::Glob(_)) | None => {}
            }
            return Ok(Gen::Text { min_len, max_len });
        }
        Ok(match base_type {
            "bool" => Gen::Bool,
            "uuid" => Gen::Uuid,
            "date" => {
                let lo = rules
                    .lower
                    .as_ref()
                    .and_then(|(k, inc)| {
                        parse_date(&k.text).map(|d| d + Days::days(i64::from(!inc)))
                    })
                    .unwrap_or_else(epoch_date);
                let hi = rules
                    .upper
                    .as_ref()
                    .and_then(|(k, inc)| {
                        parse_date(&k.text).map(|d| d - Days::days(i64::from(!inc)))
                    })
                    .unwrap_or(lo + Days::days(730));
                if lo > hi {
                    return Err(format!("its checks allow no date between {lo} and {hi}"));
                }
                Gen::Date { lo, hi }
            }
            "timestamp" | "timestamptz" => {
                let now = Utc::now();
                let lo = rules
                    .lower
                    .as_ref()
                    .and_then(|(k, _)| parse_timestamp(&k.text).map(|t| t + Days::seconds(1)))
                    .unwrap_or(now - Days::days(365));
                let hi = rules
                    .upper
                    .as_ref()
                    .and_then(|(k, _)| parse_timestamp(&k.text).map(|t| t - Days::seconds(1)))
                    .unwrap_or(lo + Days::days(400));
                if lo > hi {
                    return Err(format!("its checks allow no time between {lo} and {hi}"));
                }
                Gen::Timestamp { lo, hi }
            }
            "time" | "timetz" => Gen::Time,
            "interval" => Gen::Interval,
            "json" | "jsonb" => Gen::Json,
            "bytea" => Gen::Bytea,
            "inet" => Gen::Inet,
            "cidr" => Gen::Cidr,
            "macaddr" | "macaddr8" => Gen::MacAddr,
            "tsvector" => Gen::TsVector,
            "xml" => Gen::Xml,
            "bit" | "varbit" => Gen::Bits(modifier.map_or(8, |m| m.0).max(1)),
            "int4range" => Gen::Range("int4range"),
            "int8range" => Gen::Range("int8range"),
            "numrange" => Gen::Range("numrange"),
            "daterange" => Gen::Range("daterange"),
            "tsrange" | "tstzrange" => Gen::Range("tsrange"),
            other => return Err(format!("seedbed cannot generate values of type {other}")),
        })
    }
}

/// The regular expression a SQLite `GLOB` pattern stands for, anchored at both ends. Its
/// wildcards (`*`, `?`) take characters from `chars` (a bracket body) when the checks limit them,
/// else lowercase letters and digits.
pub(crate) fn glob_regex(glob: &str, chars: Option<&str>) -> String {
    let any = format!("[{}]", chars.unwrap_or("a-z0-9"));
    let mut out = String::from("^");
    let mut it = glob.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '*' => {
                out.push_str(&any);
                out.push('*');
            }
            '?' => out.push_str(&any),
            '[' => {
                out.push('[');
                if it.peek() == Some(&'^') {
                    it.next();
                    out.push('^');
                }
                // A `]` first in the brackets is one of its characters.
                if it.peek() == Some(&']') {
                    it.next();
                    out.push_str("\\]");
                }
                for d in it.by_ref() {
                    if d == ']' {
                        break;
                    }
                    if d == '\\' {
                        out.push('\\');
                    }
                    out.push(d);
                }
                out.push(']');
            }
            c if "\\.+(){}|$^".contains(c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('$');
    out
}

fn number(c: &Option<(Const, bool)>) -> Option<(f64, bool)> {
    c.as_ref().and_then(|(k, inc)| k.number.map(|n| (n, *inc)))
}

/// The allowed values of a list, less the forbidden ones and those of the wrong length.
fn one_of(values: Vec<String>, rules: &ColumnRules) -> Result<Vec<String>, String> {
    let kept: Vec<String> = values
        .into_iter()
        .filter(|v| !rules.not_in.contains(v))
        .filter(|v| {
            let n = v.chars().count();
            rules.min_len.is_none_or(|m| n >= m) && rules.max_len.is_none_or(|m| n <= m)
        })
        .collect();
    if kept.is_empty() {
        Err("its checks leave no allowed value".into())
    } else {
        Ok(kept)
    }
}

fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S%#z", "%Y-%m-%d %H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(text, f) {
            return Some(t.with_timezone(&Utc));
        }
    }
    let d = parse_date(text)?;
    Some(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0)?))
}

/// Where counting starts for a unique integer: 1 when allowed, else the nearest bound.
fn friendly_start(lo: i64, hi: i64) -> i64 {
    1i64.clamp(lo, hi)
}
