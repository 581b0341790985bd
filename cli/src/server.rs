//! `seedbed server start|status|stop`.

use std::time::Instant;

use clap::Subcommand;
use seedbed::server::embedded::{self, EmbeddedConfig};

#[derive(Subcommand)]
pub(crate) enum Action {
    /// Start the embedded server (or find it running) and print its DATABASE_URL (through its
    /// socket; the TCP URL goes to stderr).
    Start,
    /// Say whether the embedded server runs, and print its DATABASE_URL if it does.
    Status,
    /// Stop the embedded server.
    Stop,
}

pub(crate) async fn run(action: Action) -> Result<(), seedbed::Error> {
    let config = EmbeddedConfig::default();
    match action {
        Action::Start => {
            let started = Instant::now();
            let server = embedded::ensure(&config).await?;
            eprintln!(
                "embedded PostgreSQL {} running (pid {}, data {}), ready in {:.1} ms",
                server.version,
                server.pid,
                server.data_dir.display(),
                started.elapsed().as_secs_f64() * 1e3
            );
            print_urls(&server);
        }
        Action::Status => match embedded::status(&config).await? {
            Some(server) => {
                eprintln!(
                    "embedded PostgreSQL {} running (pid {}, data {})",
                    server.version,
                    server.pid,
                    server.data_dir.display()
                );
                print_urls(&server);
            }
            None => eprintln!("embedded PostgreSQL is not running"),
        },
        Action::Stop => {
            if embedded::stop(&config).await? {
                eprintln!("embedded PostgreSQL stopped");
            } else {
                eprintln!("embedded PostgreSQL was not running");
            }
        }
    }
    Ok(())
}

/// The URL to export (through the Unix socket, which skips the password exchange that costs
/// tens of milliseconds per connection in a debug build), and on stderr the TCP one, for a
/// container or a tool that cannot reach the socket. Both carry the cluster's password.
fn print_urls(server: &embedded::EmbeddedServer) {
    eprintln!(
        "over TCP (from a container, say): {}",
        server.url("postgres")
    );
    println!("DATABASE_URL={}", server.socket_url("postgres"));
}
