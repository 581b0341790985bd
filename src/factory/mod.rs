//! The runtime `#[derive(Factory)]` expands to.
