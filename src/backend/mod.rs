//! The backend seam.

#[cfg(feature = "postgres")]
pub mod postgres;
