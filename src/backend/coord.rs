//! Coordination between the test processes and hosts that share a server: named locks that die
//! with the session holding them. Leases, the registry and the connection budget are built on
//! them.

use std::future::Future;
use std::time::Duration;

use super::Provision;
use crate::error::Result;

/// Whether a lock is held alone or shared with other holders of the shared mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Only one holder.
    Exclusive,
    /// Any number of shared holders, excluded by an exclusive one.
    Shared,
}

/// Named locks held by a session: a process killed mid-test loses its locks with its
/// connections, so no lock outlives its holder. Every backend derives a lock's key from its name
/// in one place.
pub trait Coord: Provision {
    /// Takes the lock `name` on `conn`, waiting at most `timeout`.
    fn lock(
        conn: &mut Self::Connection,
        name: &str,
        mode: LockMode,
        timeout: Duration,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Takes the lock `name` on `conn` if it is free; whether it was.
    fn try_lock(
        conn: &mut Self::Connection,
        name: &str,
        mode: LockMode,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Releases the lock `name` that `conn` holds.
    fn unlock(
        conn: &mut Self::Connection,
        name: &str,
        mode: LockMode,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Whether any session holds the lock `name`.
    fn is_held(
        conn: &mut Self::Connection,
        name: &str,
    ) -> impl Future<Output = Result<bool>> + Send;
}
