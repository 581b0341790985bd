//! The statements factories send: sea-query's builder for the backend, how values are bound,
//! and what a failed statement says.

/// How factories write on a backend.
pub trait Dialect: sqlx::Database {}
