//! Tests of [`super`] (check.rs).

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

#[test]
fn reads_the_checks_sqlite_keeps_as_written() {
    let t = rules(
        &[
            "digest IN ('never', 'daily', 'weekly')",
            "flag IN (0, 1)",
            "kind NOT IN ('x', 'y')",
            "length(key) BETWEEN 2 AND 10",
            "n BETWEEN -5 AND 5",
            "slug GLOB '[a-z0-9]*' AND slug NOT GLOB '*[^a-z0-9-]*'",
            "ip <> '' AND ip NOT GLOB '*[^0-9A-Fa-f.:/]*'",
            "code LIKE 'A%'",
        ],
        &[],
    );
    assert_eq!(
        t.column("digest").unwrap().one_of.as_deref().unwrap(),
        ["never", "daily", "weekly"]
    );
    assert_eq!(
        t.column("flag").unwrap().one_of.as_deref().unwrap(),
        ["0", "1"]
    );
    assert_eq!(t.column("kind").unwrap().not_in, ["x", "y"]);
    let key = t.column("key").unwrap();
    assert_eq!((key.min_len, key.max_len), (Some(2), Some(10)));
    let n = t.column("n").unwrap();
    assert_eq!(n.lower.as_ref().unwrap().0.number, Some(-5.0));
    assert_eq!(n.upper.as_ref().unwrap().0.number, Some(5.0));
    let slug = t.column("slug").unwrap();
    assert_eq!(slug.patterns, [Pattern::Glob("[a-z0-9]*".into())]);
    assert_eq!(slug.chars.as_deref(), Some("a-z0-9-"));
    assert_eq!(
        t.column("ip").unwrap().chars.as_deref(),
        Some("0-9A-Fa-f.:/")
    );
    assert_eq!(
        t.column("code").unwrap().patterns,
        [Pattern::Like("A%".into())]
    );
    assert!(t.columns.values().all(|c| c.opaque.is_empty()), "{t:?}");
}
