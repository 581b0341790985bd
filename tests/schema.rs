//! Introspection of the reference schema (migrations/) against a real server.

use seedbed::isolation::{Migrations, databases};
use seedbed::schema::{ColumnDefault, FkAction, Schema, TableKind};
use seedbed::server::Server;
use seedbed::sql::QualifiedName;
use sqlx::{Connection, PgConnection};

#[allow(clippy::expect_used, reason = "test helper: its failure is the test's")]
async fn reference_schema() -> (PgConnection, Schema) {
    let server = Server::resolve().await.expect("a PostgreSQL server");
    let migrations = Migrations::from_dir("migrations")
        .await
        .expect("migrations/");
    let db = databases::ensure(server, &migrations, "inspect")
        .await
        .expect("migrated reference schema");
    let mut conn = PgConnection::connect_with(&server.database_options(&db.name))
        .await
        .expect("connect to the migrated database");
    let schema = Schema::introspect(&mut conn, &["public", "audit"])
        .await
        .expect("introspection");
    (conn, schema)
}

fn q(schema: &str, name: &str) -> QualifiedName {
    QualifiedName::new(schema, name)
}

#[tokio::test]
async fn every_child_comes_before_its_parents() {
    let (_conn, schema) = reference_schema().await;
    let order = schema.deletion_order();
    let top = |name: &QualifiedName| match &schema.table(name).expect("known table").kind {
        TableKind::Partition { parent } => parent.clone(),
        _ => name.clone(),
    };
    let mut checked = 0;
    for fk in &schema.foreign_keys {
        let (child, parent) = (top(&fk.table), top(&fk.references));
        let (c, p) = (
            order.position(&child).expect("child in order"),
            order.position(&parent).expect("parent in order"),
        );
        if c == p {
            // Same step: a self-reference or a cycle, reported as such.
            assert!(order.steps()[c].cycle.is_some(), "{} ↔ {}", child, parent);
        } else {
            assert!(c < p, "{} must be deleted before {}", child, parent);
        }
        checked += 1;
    }
    assert!(checked >= 35, "only {checked} foreign keys found");
    // Every top-level table appears exactly once; partitions do not appear.
    let listed: Vec<_> = order.tables().cloned().collect();
    let mut unique = listed.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(listed.len(), unique.len());
    assert_eq!(listed.len(), schema.top_level_tables().count());
    assert_eq!(listed.len(), 33);
    // Insertion order is the reverse.
    let insertion: Vec<_> = order.insertion_order().cloned().collect();
    assert_eq!(insertion.first(), listed.last());
}

#[tokio::test]
async fn the_cycle_is_reported_with_its_breakable_edge() {
    let (_conn, schema) = reference_schema().await;
    let order = schema.deletion_order();
    let multi: Vec<_> = order
        .steps()
        .iter()
        .filter(|s| s.tables.len() > 1)
        .collect();
    assert_eq!(multi.len(), 1, "exactly one multi-table cycle");
    let step = multi[0];
    assert_eq!(
        step.tables,
        vec![q("public", "board_columns"), q("public", "boards")]
    );
    let cycle = step.cycle.as_ref().expect("cycle");
    assert_eq!(cycle.edges.len(), 2);
    assert!(cycle.is_breakable());
    let breakable: Vec<_> = cycle.breakable_edges().map(|e| e.name.as_str()).collect();
    assert_eq!(breakable, vec!["boards_default_column_id_fkey"]);
    let edge = cycle.breakable_edges().next().expect("edge");
    assert!(edge.nullable && edge.deferrable);
    let fixed = cycle
        .edges
        .iter()
        .find(|e| e.name == "board_columns_board_id_fkey")
        .expect("board_id edge");
    assert!(!fixed.breakable());

    // Self-references are one-table cycles.
    let selfs: Vec<_> = order
        .steps()
        .iter()
        .filter(|s| s.cycle.as_ref().is_some_and(|c| c.is_self_reference()))
        .map(|s| s.tables[0].name.clone())
        .collect();
    assert_eq!(selfs, vec!["comments".to_string(), "users".to_string()]);
}

#[tokio::test]
async fn partitions_and_the_second_schema_are_handled() {
    let (_conn, schema) = reference_schema().await;
    let parent = schema.find("public", "time_entries").expect("time_entries");
    assert_eq!(parent.kind, TableKind::Partitioned);
    let partitions: Vec<_> = schema
        .tables
        .iter()
        .filter(|t| {
            t.kind
                == TableKind::Partition {
                    parent: parent.name.clone(),
                }
        })
        .map(|t| t.name.name.clone())
        .collect();
    assert_eq!(
        partitions,
        vec![
            "time_entries_2025",
            "time_entries_2026",
            "time_entries_default"
        ]
    );
    assert_eq!(parent.primary_key, vec!["id", "spent_on"]);
    // Partitions' copies of the parent's keys are folded into the parent.
    assert!(
        schema
            .foreign_keys
            .iter()
            .all(|fk| !fk.table.name.starts_with("time_entries_"))
    );
    assert_eq!(
        schema
            .foreign_keys_of(&parent.name)
            .map(|fk| fk.references.name.as_str())
            .collect::<Vec<_>>(),
        vec!["issues", "users"]
    );

    let audit = schema.find("audit", "issue_events").expect("audit table");
    assert_eq!(audit.name.schema, "audit");
    assert!(schema.deletion_order().position(&audit.name).is_some());
    assert!(
        schema
            .views
            .iter()
            .any(|v| v.name == q("public", "open_issues"))
    );
}

#[tokio::test]
async fn columns_keys_and_constraints_are_read() {
    let (_conn, schema) = reference_schema().await;
    let users = schema.find("public", "users").expect("users");
    assert_eq!(
        users.column("id").expect("id").default,
        ColumnDefault::IdentityAlways
    );
    let email = users.column("email").expect("email");
    assert_eq!(email.type_kind, 'd');
    assert_eq!(email.type_name, "email_address");
    assert_eq!(email.domain_base.as_deref(), Some("text"));
    assert!(email.not_null);
    assert_eq!(users.unique_keys.len(), 1);

    let issues = schema.find("public", "issues").expect("issues");
    let priority = issues.column("priority").expect("priority");
    assert_eq!(priority.type_kind, 'e');
    assert_eq!(
        priority.enum_labels,
        vec!["low", "medium", "high", "urgent"]
    );
    assert!(matches!(&priority.default, ColumnDefault::Expr(e) if e.contains("medium")));
    assert!(
        issues
            .checks
            .iter()
            .any(|c| c.columns == vec!["estimate_points"])
    );
    assert!(
        issues
            .unique_keys
            .iter()
            .any(|u| u.columns == vec!["project_id", "number"])
    );

    let projects = schema.find("public", "projects").expect("projects");
    let id = projects.column("id").expect("id");
    assert_eq!(id.type_name, "uuid");
    assert!(matches!(&id.default, ColumnDefault::Expr(e) if e.contains("gen_random_uuid")));

    let items = schema.find("public", "order_items").expect("order_items");
    assert!(matches!(
        items.column("total_cents").expect("total").default,
        ColumnDefault::Generated(_)
    ));

    let teams = schema.find("public", "teams").expect("teams");
    assert_eq!(
        teams.unique_keys[0].columns,
        vec!["organization_id", "name"]
    );

    let prefs = schema
        .find("public", "notification_preferences")
        .expect("notification_preferences");
    let composite: Vec<_> = schema.foreign_keys_of(&prefs.name).collect();
    assert_eq!(composite.len(), 1);
    assert_eq!(composite[0].columns, vec!["project_id", "user_id"]);
    assert_eq!(composite[0].references, q("public", "project_members"));
    assert_eq!(
        composite[0].referenced_columns,
        vec!["project_id", "user_id"]
    );
    assert_eq!(composite[0].on_delete, FkAction::Cascade);

    let restrict = schema
        .foreign_keys
        .iter()
        .find(|fk| fk.name == "issues_reporter_id_fkey")
        .expect("reporter fk");
    assert_eq!(restrict.on_delete, FkAction::Restrict);
    assert!(!restrict.nullable);
}

#[tokio::test]
async fn quoted_names_round_trip() {
    let (mut conn, schema) = reference_schema().await;
    let prefs = schema
        .find("public", "UserPreferences")
        .expect("mixed-case table");
    assert!(prefs.column("themeName").is_some());
    let order = schema.find("public", "order").expect("reserved-word table");

    for table in [&prefs.name, &order.name] {
        // The name goes back into SQL through the quoting function and finds the same table.
        let sql = format!("SELECT count(*) FROM {table}");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut conn)
            .await
            .expect("quoted name resolves");
        assert!(n >= 0);
        let oid: i64 = sqlx::query_scalar("SELECT to_regclass($1)::oid::int8")
            .bind(table.to_string())
            .fetch_one(&mut conn)
            .await
            .expect("to_regclass");
        assert_eq!(oid, schema.table(table).expect("table").oid);
    }
    // Lookup rows inserted by migrations are there.
    let roles: i64 = sqlx::query_scalar("SELECT count(*) FROM roles")
        .fetch_one(&mut conn)
        .await
        .expect("roles");
    assert_eq!(roles, 4);
}
