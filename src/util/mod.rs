//! Leaf helpers every layer may use: stable hashing and reading settings from the environment.
//! Nothing here imports from the rest of the crate but [`crate::error`].

pub(crate) mod env;
pub(crate) mod hash;
pub(crate) mod os;
pub(crate) mod wait;
