//! Misuses of `#[seedbed::test]` are compile errors that point at the mistake and say what to do.
//! One error per file, named after the error; the expected messages are beside them.

#[test]
fn test_attribute_misuse_is_a_clear_compile_error() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui_test_attr/*.rs");
}
