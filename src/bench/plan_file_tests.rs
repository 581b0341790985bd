//! Tests of [`super`] (plan_file.rs).

use super::*;

/// Every kind of generator comes back as it went.
#[test]
fn generators_survive_the_file() {
    let gens = vec![
        Gen::Int {
            lo: -5,
            hi: i64::MAX,
            unique: Some(AtomicI64::new(41)),
            step: 3,
        },
        Gen::Int {
            lo: i64::MIN,
            hi: 7,
            unique: None,
            step: 1,
        },
        Gen::Decimal {
            lo: -999.99,
            hi: 0.1 + 0.2,
            scale: 2,
        },
        Gen::Float { lo: 1e-9, hi: 1e9 },
        Gen::Text {
            min_len: 3,
            max_len: Some(16),
        },
        Gen::OneOf(vec!["a".into(), "b \"c\"".into()]),
        Gen::Regex {
            re: Regex::parse("^[A-Z]{3}-(x|y+)?[0-9]{2,4}$").unwrap(),
            min_len: 0,
            max_len: None,
            unique: true,
        },
        Gen::Like {
            pattern: "INV-%".into(),
            max_len: Some(12),
        },
        Gen::Date {
            lo: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
            hi: NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
        },
        Gen::Timestamp {
            lo: DateTime::parse_from_rfc3339("2025-01-01T00:00:00.123456789Z")
                .unwrap()
                .with_timezone(&Utc),
            hi: Utc::now(),
        },
        Gen::Bits(12),
        Gen::Range("daterange"),
        Gen::Array(Box::new(Gen::Uuid)),
        Gen::Bool,
        Gen::Time,
        Gen::Interval,
        Gen::Json,
        Gen::Bytea,
        Gen::Inet,
        Gen::Cidr,
        Gen::MacAddr,
        Gen::TsVector,
        Gen::Xml,
        Gen::EmptyArray,
    ];
    for g in &gens {
        let json = gen_to_json(g);
        let text = json.to_string();
        let back = gen_from_json(&text.parse().unwrap()).unwrap();
        assert_eq!(format!("{back:?}"), format!("{g:?}"), "{text}");
    }
    let err = gen_from_json(&r#"{"kind": "polygon"}"#.parse().unwrap()).unwrap_err();
    assert!(err.contains("polygon"), "{err}");
}

fn plan_with(values: Vec<Gen>) -> RowPlan {
    let columns = values
        .into_iter()
        .enumerate()
        .map(|(i, values)| ColumnPlan {
            name: format!("c{i}"),
            values,
            unique: true,
        })
        .collect();
    let mut plan = RowPlan {
        tables: vec![TablePlan {
            name: QualifiedName::new("public", "t"),
            columns,
            fks: Vec::new(),
            relations: Vec::new(),
            fk_groups: Vec::new(),
            requires: Vec::new(),
        }],
        index: HashMap::new(),
        skipped: Vec::new(),
        prefilled: HashMap::new(),
        schema_tables: 1,
        all_columns: HashMap::new(),
        seq: AtomicU64::new(10),
        seq_step: 1,
    };
    plan.reindex();
    plan
}

/// Copies of a plan each given their part draw disjoint unique values, and a saved plan
/// comes back with its counters where they stood.
#[test]
fn interleaved_copies_never_draw_the_same_unique_value() {
    use rand::SeedableRng;

    use crate::factory::BuildRng;
    use crate::rowgen::values::Draw;

    let unique_int = || Gen::Int {
        lo: 1,
        hi: i64::from(i32::MAX),
        unique: Some(AtomicI64::new(5)),
        step: 1,
    };
    let mut drawn: Vec<(u64, i64)> = Vec::new();
    for part in 0..3 {
        let mut plan = plan_with(vec![unique_int(), Gen::Array(Box::new(unique_int()))]);
        plan.interleave(part, 3).unwrap();
        // Nested: the array's element counts in turns too.
        let Gen::Array(element) = &plan.tables[0].columns[1].values else {
            panic!("an array");
        };
        assert!(matches!(**element, Gen::Int { step: 3, .. }), "{element:?}");
        let mut rng = BuildRng::seed_from_u64(1);
        for _ in 0..50 {
            let seq = plan.seq.fetch_add(plan.seq_step, Relaxed);
            let value = plan.tables[0].columns[0]
                .values
                .draw(&mut Draw { rng: &mut rng, seq });
            let crate::rowgen::values::Value::Int(n) = value else {
                panic!("an integer");
            };
            drawn.push((seq, n));
        }
    }
    let seqs: std::collections::HashSet<u64> = drawn.iter().map(|d| d.0).collect();
    let ints: std::collections::HashSet<i64> = drawn.iter().map(|d| d.1).collect();
    assert_eq!((seqs.len(), ints.len()), (150, 150));
    assert!(seqs.iter().all(|s| *s >= 10) && ints.iter().all(|n| *n >= 5));

    let mut plan = plan_with(vec![unique_int()]);
    assert!(plan.interleave(3, 3).is_err());
    plan.interleave(1, 4).unwrap();
    let back = RowPlan::from_json(&plan.to_json().to_string().parse().unwrap()).unwrap();
    assert_eq!((back.seq.load(Relaxed), back.seq_step), (11, 4));
    assert_eq!(
        format!("{:?}", back.tables[0].columns[0].values),
        format!("{:?}", plan.tables[0].columns[0].values)
    );
    assert!(back.tables().eq(plan.tables()));
}

#[test]
fn a_file_of_another_format_is_refused_by_name() {
    let dir = std::env::temp_dir().join(format!("seedbed-plan-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("plan.json");
    std::fs::write(&path, r#"{"format": "seedbed-row-plan/0"}"#).unwrap();
    let err = RowPlan::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("plan.json") && err.contains("seedbed-row-plan/0"),
        "{err}"
    );
    std::fs::write(&path, "not json").unwrap();
    let err = RowPlan::load(&path).unwrap_err().to_string();
    assert!(err.contains("not JSON"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
