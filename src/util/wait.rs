//! Waiting for a condition that another task of the process makes true within about a round
//! trip to the server, such as a connection the test dropped coming back to its pool.

use std::time::{Duration, Instant};

/// How long the first phase of [`until`] lasts: a few round trips to a local server.
const SHORT: Duration = Duration::from_millis(2);

/// The pause between two looks in the first phase.
const NAP: Duration = Duration::from_micros(30);

/// Waits until `done` says so, at most `limit`; whether it did.
///
/// For the first 2 ms each look yields to the runtime (the task that makes `done` true may be on
/// this thread) and then naps for 30 µs, a pause short enough to see a reply within a few
/// microseconds of its arrival. The nap gives the CPU back: a loop of bare yields keeps a core
/// busy, and on a machine with two the server and the thread that drives the connection wait for
/// it (one look in seven then took over 2 ms instead of 0.1). After that, tokio's timer, which
/// counts whole milliseconds.
pub(crate) async fn until(mut done: impl FnMut() -> bool, limit: Duration) -> bool {
    let started = Instant::now();
    loop {
        if done() {
            return true;
        }
        let waited = started.elapsed();
        if waited >= limit {
            return false;
        }
        if waited < SHORT {
            tokio::task::yield_now().await;
            // A blocking pause, kept far below a scheduler's time slice.
            std::thread::sleep(NAP);
        } else {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn sees_what_another_task_does_and_gives_up_at_the_limit() {
        let flag = Arc::new(AtomicBool::new(false));
        let setter = Arc::clone(&flag);
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            setter.store(true, Ordering::SeqCst);
        });
        assert!(until(|| flag.load(Ordering::SeqCst), Duration::from_secs(5)).await);

        let started = Instant::now();
        assert!(!until(|| false, Duration::from_millis(5)).await);
        assert!(started.elapsed() >= Duration::from_millis(5));
    }
}
