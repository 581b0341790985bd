//! `seedbed bench`: compares the isolation strategies on a schema, with a progress bar, a table,
//! a recommendation, a JSON report and an SVG chart. The measuring is the library's
//! (`seedbed::bench`); this module draws.

mod chart;
mod json;
mod progress;
mod render;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use seedbed::bench::{
    Backend, BenchConfig, ChildCommand, ChildSpec, ProcessConfig, Report, Target,
};
use seedbed::isolation::MigrationSource;

/// Test processes per target when `--process-tests` is not given: `--tests`, up to this many.
const DEFAULT_PROCESS_TESTS: usize = 50;

/// Which ways of running a suite `seedbed bench` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Model {
    /// Every test of a suite in the bench's own process (`cargo test`), serially and with
    /// --jobs workers.
    InProcess,
    /// Every test in a process of its own (`cargo nextest`), --jobs at a time, beside a floor.
    Processes,
    /// Both.
    Both,
}

impl Model {
    /// The name on the command line and in bench.json.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Model::InProcess => "in-process",
            Model::Processes => "processes",
            Model::Both => "both",
        }
    }
}

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Server to use (default: SEEDBED_DATABASE_URL, DATABASE_URL, else the embedded server).
    /// A sqlite: URL benches SQLite, with the test databases in seedbed-sqlite beside its file;
    /// a mysql:// (or mariadb://) URL benches that MySQL or MariaDB server.
    #[arg(long)]
    database_url: Option<String>,
    /// Bench SQLite: test databases are files in SEEDBED_SQLITE_DIR, else in seedbed-sqlite in
    /// the target directory (or the system's temporary directory); no server is needed. The
    /// default migrations are then the reference schema adapted to SQLite.
    #[arg(long, conflicts_with = "mysql")]
    sqlite: bool,
    /// Bench MySQL or MariaDB: the server of SEEDBED_MYSQL_URL, a mysql:// SEEDBED_DATABASE_URL
    /// or DATABASE_URL, else the embedded MariaDB/MySQL server started from this machine's
    /// binaries. The default migrations are then the reference schema adapted to MySQL.
    #[arg(long)]
    mysql: bool,
    /// Migrations directory (default: the bundled reference schema).
    #[arg(long)]
    migrations: Option<PathBuf>,
    /// What to measure, comma-separated: rollback, truncate, template, namespace, baseline
    /// (create a database and run every migration per test, as #[sqlx::test] does).
    #[arg(long, default_value = "rollback,truncate,template,namespace,baseline")]
    strategies: String,
    /// Tests per suite (each in-process suite runs serially and with --jobs workers); the
    /// process-per-test runs take as many, up to 50 (see --process-tests).
    #[arg(long, default_value_t = 100)]
    tests: usize,
    /// How the tests run: in-process (one process, as cargo test), processes (one process per
    /// test, as cargo nextest: each strategy and the baseline, beside a floor process that only
    /// connects, writes the same rows in a transaction and rolls back), or both.
    #[arg(long, value_enum, default_value_t = Model::Both)]
    model: Model,
    /// Test processes per target (and for the floor) in the process-per-test runs, --jobs at a
    /// time. Default: --tests, up to 50. A test process takes 20 to 250 ms where a test in one
    /// process takes 1 to 100 ms (its start-up, its connections, the strategy's first use in a
    /// process), so 100 per target would double the default run; 50 add about 20 s to it on two
    /// cores and still give stable medians and p95s.
    #[arg(long)]
    process_tests: Option<usize>,
    /// Tables each test writes, chosen along the foreign-key graph.
    #[arg(long, default_value_t = 6)]
    tables: usize,
    /// Rows each test writes into each of its tables.
    #[arg(long, default_value_t = 20)]
    rows: usize,
    /// Parallel workers of the parallel run, and test processes running at once in the
    /// process-per-test runs, as `cargo nextest -j` (default: the number of CPUs).
    #[arg(long)]
    jobs: Option<usize>,
    /// Where the JSON report and the SVG chart go.
    #[arg(long, default_value = "target/seedbed-bench")]
    out: PathBuf,
    /// Seed of the generated rows and of the tables each test chooses.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

pub(crate) async fn run(args: BenchArgs) -> Result<ExitCode, seedbed::Error> {
    // Cheap mistakes first, before any server starts.
    let targets = Target::parse_list(&args.strategies)?;
    let url_scheme = |schemes: &[&str]| {
        args.database_url
            .as_deref()
            .is_some_and(|u| schemes.iter().any(|s| u.starts_with(s)))
    };
    let sqlite = args.sqlite || url_scheme(&["sqlite:"]);
    let mysql = args.mysql || url_scheme(&["mysql:", "mariadb:"]);
    if sqlite && mysql {
        return Err(seedbed::Error::Config(
            "--database-url names one backend and --sqlite/--mysql another: give one of them"
                .into(),
        ));
    }
    let migrations = match &args.migrations {
        Some(dir) => {
            // Read now so a missing or unreadable directory is reported at once.
            if !dir.exists() {
                return Err(seedbed::Error::Migrations {
                    path: dir.clone(),
                    reason: "no such directory (a relative path is taken from the current \
                             directory)"
                        .into(),
                });
            }
            seedbed::isolation::Migrations::from_dir(dir).await?;
            MigrationSource::Dir(dir.clone())
        }
        None if sqlite => MigrationSource::Migrator(&crate::REFERENCE_SQLITE_MIGRATIONS),
        None if mysql => MigrationSource::Migrator(&crate::REFERENCE_MYSQL_MIGRATIONS),
        None => MigrationSource::Migrator(&crate::REFERENCE_MIGRATIONS),
    };
    if sqlite {
        // The isolation engine works on the process's directory: make it this one.
        let dir = seedbed::backend::sqlite::Directory::resolve(args.database_url.as_deref())?;
        seedbed::backend::sqlite::Directory::install(dir)?;
    } else if mysql {
        if let Some(url) = &args.database_url {
            // The isolation engine works on the process's MySQL server: make it this one.
            let server = seedbed::backend::mysql::MySqlServer::from_url(url).await?;
            seedbed::backend::mysql::MySqlServer::install(server)?;
        }
    } else if let Some(url) = &args.database_url {
        // The isolation engine works on the process's server: make it this one.
        let timeout = seedbed::server::connect_timeout()?;
        let server = seedbed::server::Server::from_url_with(url, "--database-url", timeout).await?;
        seedbed::server::Server::install(server)?;
    }

    let processes = match args.model {
        Model::InProcess => None,
        Model::Processes | Model::Both => {
            let program = std::env::current_exe().map_err(|e| {
                io_error(
                    "cannot find the seedbed program to start test processes",
                    &PathBuf::from("."),
                    e,
                )
            })?;
            Some(ProcessConfig {
                command: ChildCommand::new(program).arg("__bench-child"),
                tests: args
                    .process_tests
                    .unwrap_or_else(|| args.tests.min(DEFAULT_PROCESS_TESTS)),
            })
        }
    };
    let config = BenchConfig {
        backend: if sqlite {
            Backend::Sqlite
        } else if mysql {
            Backend::MySql
        } else {
            Backend::Postgres
        },
        migrations,
        targets,
        tests: args.tests,
        tables: args.tables,
        rows: args.rows,
        jobs: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        seed: args.seed,
        in_process: args.model != Model::Processes,
        processes,
    };
    let bar = progress::Bar::new();
    let result = seedbed::bench::run(&config, &bar).await;
    bar.done();
    let mut report = result?;
    if args.migrations.is_none() {
        report.schema.source = if sqlite {
            "bundled reference schema, SQLite".into()
        } else if mysql {
            "bundled reference schema, MySQL".into()
        } else {
            "bundled reference schema".into()
        };
    }

    print!("{}", render::render(&report));
    std::fs::create_dir_all(&args.out)
        .map_err(|e| io_error("cannot create the output directory", &args.out, e))?;
    let json_path = args.out.join("bench.json");
    let svg_path = args.out.join("bench.svg");
    std::fs::write(&json_path, json::render(&report, args.model.name()))
        .map_err(|e| io_error("cannot write", &json_path, e))?;
    chart::draw(&report, &svg_path)?;
    println!(
        "\nreport: {}\nchart:  {}",
        json_path.display(),
        svg_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `seedbed __bench-child …`: one test process of the process-per-test runs, on a
/// current-thread runtime as `#[tokio::test]` builds; prints its report line.
pub(crate) fn child(args: Vec<OsString>, started: Instant) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let spec = ChildSpec::parse(args)?;
        let reference = match seedbed::bench::child_backend() {
            Backend::Sqlite => &crate::REFERENCE_SQLITE_MIGRATIONS,
            Backend::MySql => &crate::REFERENCE_MYSQL_MIGRATIONS,
            Backend::Postgres => &crate::REFERENCE_MIGRATIONS,
        };
        seedbed::bench::run_child(&spec, MigrationSource::Migrator(reference), started).await
    });
    match result {
        Ok(report) => {
            println!("{}", report.to_line());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn io_error(
    action: &'static str,
    path: &std::path::Path,
    source: std::io::Error,
) -> seedbed::Error {
    seedbed::Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// A ratio to the baseline: `78×`, `4.6×`.
pub(crate) fn times(ratio: f64) -> String {
    if ratio >= 10.0 {
        format!("{ratio:.0}×")
    } else {
        format!("{ratio:.1}×")
    }
}

/// `Report::format_duration`, shorter to call.
pub(crate) fn ms(d: Duration) -> String {
    Report::format_duration(d)
}
