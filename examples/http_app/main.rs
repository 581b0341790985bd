//! Serves the example API on 127.0.0.1:3000 against the reference schema, migrated on the server
//! seedbed resolves (DATABASE_URL, or the embedded one):
//!
//! ```sh
//! cargo run --example http_app
//! curl -X POST localhost:3000/orgs -H 'content-type: application/json' \
//!      -d '{"name":"Acme","slug":"acme","owner_email":"ada@acme.test"}'
//! ```
//!
//! Its tests are in `tests/http_app.rs`: the same router, driven through `tower::ServiceExt::oneshot`
//! under each isolation strategy.

mod app;

use seedbed::isolation::{Migrations, databases};
use seedbed::server::Server;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::resolve().await?;
    let migrations =
        Migrations::from_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")).await?;
    let db = databases::ensure(server, &migrations, "example").await?;
    let pool = sqlx::PgPool::connect_with(server.database_options(&db.name)).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    eprintln!(
        "serving on http://127.0.0.1:3000 against {}",
        server.url_for(&db.name)
    );
    axum::serve(listener, app::router(pool)).await?;
    Ok(())
}
