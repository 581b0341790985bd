//! Settings read from the environment, each parsed in one place with an error that names the
//! variable, what it must be and what it was.

use std::time::Duration;

use crate::error::{Error, Result};

/// The variable's value, trimmed, if it is set and not blank.
pub(crate) fn text(var: &str) -> Option<String> {
    std::env::var(var)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A count of at least `min`, `default` when the variable is not set.
pub(crate) fn count(var: &str, min: usize, default: usize) -> Result<usize> {
    match std::env::var(var) {
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= min)
            .ok_or_else(|| {
                Error::Config(format!(
                    "{var} must be a whole number of at least {min}, not `{v}`"
                ))
            }),
        Err(_) => Ok(default),
    }
}

/// A positive number of seconds (fractions allowed), `default` when the variable is not set.
pub(crate) fn seconds(var: &str, default: Duration) -> Result<Duration> {
    match std::env::var(var) {
        Ok(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| {
                Error::Config(format!(
                    "{var} must be a positive number of seconds, not `{v}`"
                ))
            }),
        Err(_) => Ok(default),
    }
}

/// A switch: `1`/`true`/`on`/`yes` or `0`/`false`/`off`/`no`, `default` when the variable is
/// not set; `meaning` says what each value does, for the error.
pub(crate) fn switch(var: &str, default: bool, meaning: &str) -> Result<bool> {
    match std::env::var(var) {
        Err(_) => Ok(default),
        Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "on" | "yes" => Ok(true),
            "0" | "false" | "off" | "no" => Ok(false),
            _ => Err(Error::Config(format!(
                "{var} must be 1 or 0 ({meaning}), not `{v}`"
            ))),
        },
    }
}

/// The slot nextest gave the running test (`NEXTEST_TEST_GLOBAL_SLOT`), unique among the tests
/// of a run that run at once (`None` outside nextest).
pub(crate) fn nextest_slot() -> Option<usize> {
    text("NEXTEST_TEST_GLOBAL_SLOT")?.parse().ok()
}

/// Whether this process runs one test and exits, as `cargo nextest` runs tests
/// (`NEXTEST_EXECUTION_MODE=process-per-test`): work done ahead for later tests of the process
/// (spare clones, say) would be cut off at its exit.
pub(crate) fn one_test_per_process() -> bool {
    std::env::var("NEXTEST_EXECUTION_MODE").is_ok_and(|m| m == "process-per-test")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_variables_give_the_defaults() {
        let var = "SEEDBED_UTIL_ENV_TEST_UNSET";
        assert_eq!(count(var, 1, 7).ok(), Some(7));
        assert_eq!(
            seconds(var, Duration::from_secs(3)).ok(),
            Some(Duration::from_secs(3))
        );
        assert_eq!(switch(var, true, "x").ok(), Some(true));
        assert_eq!(text(var), None);
    }

    #[test]
    fn a_bad_value_names_the_variable_what_it_must_be_and_what_it_was() {
        // Cargo (and nextest) run tests with CARGO_PKG_NAME set to the package's name.
        let var = "CARGO_PKG_NAME";
        let message = |r: Result<String>| r.err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(text(var).as_deref(), Some("seedbed"));
        assert!(
            message(count(var, 1, 7).map(|n| n.to_string()))
                .contains("CARGO_PKG_NAME must be a whole number of at least 1, not `seedbed`")
        );
        assert!(
            message(seconds(var, Duration::ZERO).map(|d| format!("{d:?}")))
                .contains("must be a positive number of seconds, not `seedbed`")
        );
        assert!(
            message(switch(var, true, "on or off").map(|b| b.to_string()))
                .contains("must be 1 or 0 (on or off), not `seedbed`")
        );
    }
}
