//! Misuses of `#[derive(Factory)]` and `#[derive(DbEnum)]` are compile errors that point at the
//! mistake and say what to do. One error per file, named after the error; the expected messages
//! are beside them (`TRYBUILD=overwrite cargo test --test ui` rewrites them after a change).

#[test]
fn factory_misuse_is_a_clear_compile_error() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
