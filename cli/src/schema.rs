//! `seedbed schema`: the tables of a migrated schema in deletion order.

use std::path::PathBuf;
use std::time::Instant;

use seedbed::isolation::{Migrations, maintenance};
use seedbed::schema::{Schema, TableKind};
use sqlx::Connection;

pub(crate) async fn run(
    database_url: Option<String>,
    migrations_dir: Option<PathBuf>,
) -> Result<(), seedbed::Error> {
    let started = Instant::now();
    let server = crate::server_from(database_url).await?;
    let migrations = match &migrations_dir {
        Some(dir) => Migrations::from_dir(dir).await?,
        None => Migrations::from_migrator(&crate::REFERENCE_MIGRATIONS),
    };
    let db = maintenance::migrated_database(&server, &migrations, "inspect").await?;
    let mut conn = sqlx::PgConnection::connect_with(&server.database_options(&db.name))
        .await
        .map_err(|e| seedbed::Error::Database {
            context: format!("connecting to {}", db.name),
            source: e,
        })?;
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace \
         WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
           AND nspname NOT LIKE 'pg_temp_%' AND nspname NOT LIKE 'pg_toast_temp_%' \
         ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(|e| seedbed::Error::Database {
        context: "listing schemas".into(),
        source: e,
    })?;
    let names: Vec<&str> = schemas.iter().map(String::as_str).collect();
    let schema = Schema::introspect(&mut conn, &names).await?;
    let _ = conn.close().await;

    println!(
        "server: {} (PostgreSQL {})",
        server.url_for(&db.name),
        server.major_version()
    );
    println!(
        "migrations: {} ({}, checksum {}), database {} {}",
        migrations.len(),
        migrations_dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|| "bundled reference schema".into()),
        migrations.checksum(),
        db.name,
        if db.built {
            format!("built in {:.0} ms", db.build_time.as_secs_f64() * 1e3)
        } else {
            "reused".into()
        }
    );
    let order = schema.deletion_order();
    println!(
        "\n{} tables in deletion order (children first):",
        order.tables().count()
    );
    for (i, step) in order.steps().iter().enumerate() {
        let names: Vec<String> = step
            .tables
            .iter()
            .map(|t| {
                let partitions: Vec<&str> = schema
                    .tables
                    .iter()
                    .filter(|p| matches!(&p.kind, TableKind::Partition { parent } if parent == t))
                    .map(|p| p.name.name.as_str())
                    .collect();
                if partitions.is_empty() {
                    t.unquoted()
                } else {
                    format!("{} (partitions: {})", t.unquoted(), partitions.join(", "))
                }
            })
            .collect();
        let note = match &step.cycle {
            Some(c) if c.is_self_reference() => "  [self-reference]".to_string(),
            Some(c) => {
                let breaks: Vec<String> = c
                    .breakable_edges()
                    .map(|e| {
                        format!(
                            "{}{}{}",
                            e.name,
                            if e.nullable { " nullable" } else { "" },
                            if e.deferrable { " deferrable" } else { "" }
                        )
                    })
                    .collect();
                if breaks.is_empty() {
                    "  [cycle, cannot be broken]".to_string()
                } else {
                    format!("  [cycle, breakable at {}]", breaks.join(", "))
                }
            }
            None => String::new(),
        };
        println!("{:>3}. {}{}", i + 1, names.join(" + "), note);
    }
    eprintln!("\ndone in {:.0} ms", started.elapsed().as_secs_f64() * 1e3);
    Ok(())
}
