//! Unique values: the sequence number and the test's token appended to a value.

use std::fmt::Write as _;

/// A value that can carry a sequence number and a test's token, so that it never repeats.
///
/// `#[factory(unique)]` appends the build's sequence number to whatever the field's value source
/// produced (a faker, a default, a lazy closure), and, when the test shares its database with
/// other tests (Rollback, Truncate, Namespace), the test's token as well. `sequence` fields carry
/// the token the same way. Overrides are never changed: a value you set is used as you wrote it.
///
/// # Format
///
/// Everything is added to the *local part*: before the last `@` when the value looks like an
/// email address (text on both sides of the `@`), else at the end.
///
/// - **Sequence number** `n`: appended directly when the local part ends with an ASCII letter,
///   after a `-` otherwise. `jane.doe@example.org` becomes `jane.doe12@example.org`, `acme`
///   becomes `acme12`, `route-66` becomes `route-66-12`.
/// - **Token** (six lowercase letters and digits): appended directly after everything else, so
///   only lowercase letters and digits are ever added (what slug and identifier CHECK
///   constraints usually accept): `jane.doe12k3f9qz@example.org`, `user3k3f9qz@example.com`.
///
/// Both are unambiguous, so values stay distinct by construction: the token has a fixed width,
/// and the number is exactly the run of digits before it, since the text before the number
/// never ends with a digit.
///
/// A `sequence` format can place the token itself with `{token}`
/// (`sequence = "user{n}.{token}@example.com"`); it is then always there, and nothing else is
/// added.
///
/// ```
/// use seedbed::factory::UniqueValue;
///
/// assert_eq!("jane.doe@example.org".to_string().with_sequence(12), "jane.doe12@example.org");
/// assert_eq!("route-66".to_string().with_sequence(3), "route-66-3");
/// assert_eq!("user3@example.com".to_string().with_token("k3f9qz"), "user3k3f9qz@example.com");
/// assert_eq!(Some("acme".to_string()).with_sequence(7), Some("acme7".to_string()));
/// assert_eq!(None::<String>.with_sequence(7), None);
/// ```
///
/// Implement it for a newtype over text to use `unique` on it:
///
/// ```
/// use seedbed::factory::UniqueValue;
///
/// struct Slug(String);
///
/// impl UniqueValue for Slug {
///     fn with_sequence(self, n: u64) -> Self {
///         Slug(self.0.with_sequence(n))
///     }
///     fn with_token(self, token: &str) -> Self {
///         Slug(self.0.with_token(token))
///     }
/// }
/// assert_eq!(Slug("acme".into()).with_sequence(2).0, "acme2");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot carry a sequence number or a token: `unique` needs a text value",
    label = "`unique` needs a text value",
    note = "for numbers, use `sequence = |n| …` (numbers carry no token); for a newtype over \
            `String`, implement `seedbed::factory::UniqueValue` for it"
)]
pub trait UniqueValue: Sized {
    /// The value with the sequence number `n` appended.
    fn with_sequence(self, n: u64) -> Self;

    /// The value with the test's token appended.
    fn with_token(self, token: &str) -> Self;
}

impl UniqueValue for String {
    fn with_sequence(self, n: u64) -> Self {
        let at = insertion_point(&self);
        let sep = !self[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphabetic());
        let mut out = String::with_capacity(self.len() + 21);
        out.push_str(&self[..at]);
        if sep {
            out.push('-');
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "{n}");
        out.push_str(&self[at..]);
        out
    }

    fn with_token(mut self, token: &str) -> Self {
        let at = insertion_point(&self);
        self.insert_str(at, token);
        self
    }
}

impl<T: UniqueValue> UniqueValue for Option<T> {
    fn with_sequence(self, n: u64) -> Self {
        self.map(|v| v.with_sequence(n))
    }

    fn with_token(self, token: &str) -> Self {
        self.map(|v| v.with_token(token))
    }
}

/// Where a suffix goes: before the last `@` of an email-like value, else at the end.
fn insertion_point(s: &str) -> usize {
    match s.rfind('@') {
        Some(at) if at > 0 && at + 1 < s.len() => at,
        _ => s.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_like_values_get_their_suffix_before_the_at() {
        assert_eq!("a@b".to_string().with_sequence(1), "a1@b");
        assert_eq!("a1@b".to_string().with_sequence(1), "a1-1@b");
        assert_eq!("@handle".to_string().with_sequence(1), "@handle1");
        assert_eq!("trailing@".to_string().with_sequence(1), "trailing@-1");
        assert_eq!("x@y@z".to_string().with_token("tok123"), "x@ytok123@z");
        assert_eq!(String::new().with_sequence(5), "-5");
    }

    #[test]
    fn numbers_never_merge_with_the_text_before_them() {
        // "abc1" + 23 and "abc12" + 3 would both be "abc123" without the separator.
        let a = "abc1".to_string().with_sequence(23);
        let b = "abc12".to_string().with_sequence(3);
        assert_ne!(a, b);
        assert_eq!(a, "abc1-23");
    }
}
