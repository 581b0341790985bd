//! Measurements: percentiles of durations, and the connections a run holds on the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use sqlx::{Connection, PgConnection};

use crate::backend::postgres::server::Server;
use crate::error::{Error, Result};

/// Percentiles of a set of durations (nearest rank).
///
/// ```
/// use std::time::Duration;
/// use seedbed::bench::Summary;
///
/// let ms = |n| Duration::from_millis(n);
/// let s = Summary::of(&[ms(3), ms(1), ms(2), ms(10)]);
/// assert_eq!((s.p50, s.p95, s.max, s.samples), (ms(2), ms(10), ms(10), 4));
/// assert_eq!(Summary::of(&[]).samples, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// The median.
    pub p50: Duration,
    /// The 95th percentile.
    pub p95: Duration,
    /// The largest.
    pub max: Duration,
    /// The mean.
    pub mean: Duration,
    /// How many durations.
    pub samples: usize,
}

impl Summary {
    /// The summary of `samples`.
    pub fn of(samples: &[Duration]) -> Summary {
        if samples.is_empty() {
            return Summary::default();
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let rank = |p: f64| {
            let r = (p * sorted.len() as f64).ceil() as usize;
            sorted[r.clamp(1, sorted.len()) - 1]
        };
        let total: Duration = sorted.iter().sum();
        Summary {
            p50: rank(0.50),
            p95: rank(0.95),
            max: sorted[sorted.len() - 1],
            mean: total / u32::try_from(sorted.len()).unwrap_or(u32::MAX),
            samples: sorted.len(),
        }
    }
}

/// A connection that counts the server's client connections (every database, every user).
#[async_trait::async_trait]
pub(crate) trait Counter: Send + 'static {
    /// The client connections on the server right now.
    async fn client_connections(&mut self) -> Result<i64>;
    /// Closes the connection.
    async fn close_counter(self);
}

#[async_trait::async_trait]
impl Counter for PgConnection {
    async fn client_connections(&mut self) -> Result<i64> {
        sqlx::query_scalar(
            "SELECT count(*)::int8 FROM pg_stat_activity WHERE backend_type = 'client backend'",
        )
        .fetch_one(self)
        .await
        .map_err(Error::db("counting connections in pg_stat_activity"))
    }

    async fn close_counter(self) {
        let _ = self.close().await;
    }
}

#[cfg(feature = "mysql")]
#[async_trait::async_trait]
impl Counter for sqlx::MySqlConnection {
    async fn client_connections(&mut self) -> Result<i64> {
        // The server's own threads (`Daemon`: the event scheduler, InnoDB's purge on MySQL)
        // are not clients.
        sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS SIGNED) FROM information_schema.PROCESSLIST \
             WHERE COMMAND NOT IN ('Daemon', 'Binlog Dump', 'Binlog Dump GTID')",
        )
        .fetch_one(self)
        .await
        .map_err(Error::db(
            "counting connections in information_schema.PROCESSLIST",
        ))
    }

    async fn close_counter(self) {
        let _ = self.close().await;
    }
}

/// Samples the server's client connections every few milliseconds while a run goes on; the peak
/// is counted from the number before the run, so connections others hold (and the sampler's own)
/// do not count.
pub(crate) struct Sampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicI64>,
    before: i64,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Sampler {
    /// A sampler that samples nothing: SQLite has no server to count connections on.
    #[cfg(feature = "sqlite")]
    pub(crate) fn none() -> Sampler {
        Sampler {
            stop: Arc::new(AtomicBool::new(true)),
            peak: Arc::new(AtomicI64::new(0)),
            before: 0,
            task: None,
        }
    }

    pub(crate) async fn start(server: &Server) -> Result<Sampler> {
        Sampler::on(server.connect().await?).await
    }

    /// Samples through `conn`, which it closes when it stops.
    pub(crate) async fn on<C: Counter>(mut conn: C) -> Result<Sampler> {
        let before = match conn.client_connections().await {
            Ok(n) => n,
            Err(e) => {
                conn.close_counter().await;
                return Err(e);
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicI64::new(before));
        let task = tokio::spawn({
            let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
            async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = conn.client_connections().await {
                        peak.fetch_max(n, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                conn.close_counter().await;
            }
        });
        Ok(Sampler {
            stop,
            peak,
            before,
            task: Some(task),
        })
    }

    /// Stops sampling; returns how many connections the run added at its peak.
    pub(crate) async fn finish(self) -> i64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(task) = self.task {
            let _ = task.await;
        }
        (self.peak.load(Ordering::Relaxed) - self.before).max(0)
    }
}
