//! Procedural macros of seedbed: `#[derive(Factory)]` and `#[seedbed::test]`. Use them through the `seedbed` crate.
