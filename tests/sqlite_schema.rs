//! SQLite introspection (feature `sqlite`): tables, columns and their defaults, keys, foreign
//! keys (composite, self-referencing, in a cycle) and the deletion order the cleaner follows,
//! read from an in-memory database.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

use seedbed::backend::Introspect;
use seedbed::schema::{ColumnDefault, FkAction};
use seedbed::sql::QualifiedName;
use sqlx::{Connection, Sqlite, SqliteConnection};

const SCHEMA: &str = r#"
    CREATE TABLE orgs (
        id INTEGER PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL DEFAULT 'Acme',
        created TEXT NOT NULL DEFAULT (datetime('now'))
    );
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        org_id INTEGER NOT NULL REFERENCES orgs ON DELETE CASCADE,
        email TEXT NOT NULL,
        invited_by INTEGER REFERENCES users (id),
        email_lower TEXT GENERATED ALWAYS AS (lower(email)) STORED,
        UNIQUE (org_id, email)
    );
    CREATE TABLE boards (
        id INTEGER PRIMARY KEY,
        default_column_id INTEGER REFERENCES columns (id) ON DELETE SET NULL
    );
    CREATE TABLE columns (
        id INTEGER PRIMARY KEY,
        board_id INTEGER NOT NULL REFERENCES boards (id)
    );
    CREATE TABLE memberships (
        org_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        role TEXT NOT NULL,
        PRIMARY KEY (org_id, user_id),
        FOREIGN KEY (org_id, user_id) REFERENCES users (org_id, id)
    );
    CREATE TABLE "Quoted Name" ("odd column" TEXT);
    CREATE VIEW admins AS SELECT * FROM users;
"#;

async fn database() -> SqliteConnection {
    let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
    sqlx::raw_sql(SCHEMA).execute(&mut conn).await.unwrap();
    conn
}

fn main_table(name: &str) -> QualifiedName {
    QualifiedName::new("main", name)
}

#[tokio::test]
async fn tables_columns_keys_and_views_are_read() {
    let mut conn = database().await;
    let schemas = <Sqlite as Introspect>::user_schemas(&mut conn)
        .await
        .unwrap();
    assert_eq!(schemas, ["main"]);
    let schema = <Sqlite as Introspect>::introspect(&mut conn, &["main"])
        .await
        .unwrap();
    let names: Vec<&str> = schema.tables.iter().map(|t| t.name.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Quoted Name",
            "boards",
            "columns",
            "memberships",
            "orgs",
            "users"
        ]
    );
    assert_eq!(schema.views.len(), 1);
    assert_eq!(schema.views[0].name, main_table("admins"));

    let orgs = schema.find("main", "orgs").unwrap();
    assert_eq!(orgs.primary_key, ["id"]);
    let id = orgs.column("id").unwrap();
    assert_eq!(
        id.default,
        ColumnDefault::IdentityByDefault,
        "the rowid is assigned"
    );
    assert!(id.can_omit());
    let name = orgs.column("name").unwrap();
    assert_eq!(name.default, ColumnDefault::Expr("'Acme'".into()));
    assert!(name.not_null);
    assert_eq!(orgs.column("slug").unwrap().sql_type, "text");
    assert!(!orgs.column("slug").unwrap().can_omit());
    assert_eq!(orgs.unique_keys.len(), 1);
    assert_eq!(orgs.unique_keys[0].columns, ["slug"]);

    let users = schema.find("main", "users").unwrap();
    assert!(matches!(
        users.column("email_lower").unwrap().default,
        ColumnDefault::Generated(_)
    ));
    assert_eq!(users.unique_keys[0].columns, ["org_id", "email"]);

    let memberships = schema.find("main", "memberships").unwrap();
    assert_eq!(memberships.primary_key, ["org_id", "user_id"]);
    assert!(
        memberships.column("org_id").unwrap().default == ColumnDefault::None,
        "a composite key is not a rowid"
    );
}

#[tokio::test]
async fn foreign_keys_and_the_deletion_order() {
    let mut conn = database().await;
    let schema = <Sqlite as Introspect>::introspect(&mut conn, &["main"])
        .await
        .unwrap();
    let users = main_table("users");
    let to_orgs = schema
        .foreign_keys_of(&users)
        .find(|fk| fk.references == main_table("orgs"))
        .unwrap();
    assert_eq!(to_orgs.columns, ["org_id"]);
    assert_eq!(
        to_orgs.referenced_columns,
        ["id"],
        "no columns named: the primary key"
    );
    assert_eq!(to_orgs.on_delete, FkAction::Cascade);
    assert!(!to_orgs.nullable);
    let invited = schema
        .foreign_keys_of(&users)
        .find(|fk| fk.is_self_reference())
        .unwrap();
    assert!(invited.nullable && invited.breakable());

    let memberships = main_table("memberships");
    let composite = schema.foreign_keys_of(&memberships).next().unwrap();
    assert_eq!(composite.columns, ["org_id", "user_id"]);
    assert_eq!(composite.referenced_columns, ["org_id", "id"]);

    // Children before parents; the boards <-> columns cycle grouped in one step.
    let order = schema.deletion_order();
    let position = |name: &str| {
        order
            .steps()
            .iter()
            .position(|s| s.tables.contains(&main_table(name)))
            .unwrap()
    };
    assert!(position("memberships") < position("users"));
    assert!(position("users") < position("orgs"));
    assert_eq!(
        position("boards"),
        position("columns"),
        "the cycle is one step"
    );
}
