//! `seedbed server start|status|stop [--mysql]`.

use std::time::Instant;

use clap::{Args, Subcommand};
use seedbed::backend::mysql::Flavor;
use seedbed::backend::mysql::embedded as mysql;
use seedbed::server::embedded::{self, EmbeddedConfig};

#[derive(Subcommand)]
pub(crate) enum Action {
    /// Start the embedded server (or find it running) and print its URL (through its socket; the
    /// TCP URL goes to stderr).
    Start(Which),
    /// Say whether the embedded server runs, and print its URL if it does.
    Status(Which),
    /// Stop the embedded server.
    Stop(Which),
}

/// Which embedded server.
#[derive(Args)]
pub(crate) struct Which {
    /// The embedded MySQL (MariaDB) server that MySQL tests use, instead of PostgreSQL's.
    #[arg(long)]
    mysql: bool,
}

pub(crate) async fn run(action: Action) -> Result<(), seedbed::Error> {
    match action {
        Action::Start(Which { mysql: true }) => {
            let started = Instant::now();
            let server = mysql::ensure().await?;
            eprintln!(
                "embedded {} {} running (pid {}, data {}), ready in {:.1} ms",
                server.flavor,
                server.version,
                server.pid,
                server.data_dir.display(),
                started.elapsed().as_secs_f64() * 1e3
            );
            print_mysql_urls(&server);
        }
        Action::Status(Which { mysql: true }) => match mysql::status().await? {
            Some(server) => {
                eprintln!(
                    "embedded {} {} running (pid {}, data {})",
                    server.flavor,
                    server.version,
                    server.pid,
                    server.data_dir.display()
                );
                print_mysql_urls(&server);
            }
            None => eprintln!("the embedded MySQL server is not running"),
        },
        Action::Stop(Which { mysql: true }) => {
            if mysql::stop().await? {
                eprintln!("the embedded MySQL server stopped");
            } else {
                eprintln!("the embedded MySQL server was not running");
            }
        }
        Action::Start(Which { mysql: false }) => {
            let config = EmbeddedConfig::default();
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
        Action::Status(Which { mysql: false }) => {
            match embedded::status(&EmbeddedConfig::default()).await? {
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
            }
        }
        Action::Stop(Which { mysql: false }) => {
            if embedded::stop(&EmbeddedConfig::default()).await? {
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

/// The MySQL URLs: through the socket to export, over TCP on stderr. Both carry root's password.
/// A MySQL server (not MariaDB) exports the TCP one too: sqlx cannot authenticate through its
/// socket (see `EmbeddedMySql::connect_options`).
fn print_mysql_urls(server: &mysql::EmbeddedMySql) {
    eprintln!("over TCP (from a container, say): {}", server.url(""));
    let export = match server.flavor {
        Flavor::MariaDb => server.socket_url(""),
        Flavor::MySql => server.url(""),
    };
    println!("SEEDBED_MYSQL_URL={export}");
}
