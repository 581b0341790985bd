//! Stand-ins for the values a database generates, for stubbed builds
//! ([`stubbed`](crate::factory::stubbed), `build_stubbed()`).

use rand::RngExt;

use crate::factory::BuildCtx;

/// A plausible, distinct value for a field the database generates (`#[factory(generated)]`),
/// made by a stubbed build: what `build_stubbed()` puts in ids.
///
/// Integers are the build's sequence number plus 1000 (1001, 1002, … for the factory's builds in
/// a test: distinct, positive, and the same on every run); text is `stub-<n>`; a UUID is random
/// (version 4) from the build's stream. Implement it for an id newtype:
///
/// ```
/// use seedbed::factory::{BuildCtx, StubValue};
///
/// #[derive(Debug, Default, Clone, Copy, PartialEq)]
/// pub struct UserId(pub i64);
///
/// impl StubValue for UserId {
///     fn stub(build: &mut BuildCtx) -> Self {
///         UserId(i64::stub(build))
///     }
/// }
/// # impl From<UserId> for seedbed::factory::Value {
/// #     fn from(id: UserId) -> Self { id.0.into() }
/// # }
///
/// #[derive(Debug, seedbed::Factory)]
/// pub struct User {
///     #[factory(generated)]
///     pub id: UserId,
/// }
///
/// assert!(User::factory().build_stubbed().id.0 > 1000);
/// ```
pub trait StubValue: Sized {
    /// The stand-in for this build.
    fn stub(build: &mut BuildCtx) -> Self;
}

/// 1000 plus the build's number, within `max` (values past it wrap back to 1001).
fn stub_number(build: &BuildCtx, max: u64) -> u64 {
    let span = max.saturating_sub(1000).max(1);
    1000 + (build.n().saturating_sub(1) % span) + 1
}

macro_rules! integer_stubs {
    ($($t:ty),*) => {$(
        impl StubValue for $t {
            fn stub(build: &mut BuildCtx) -> Self {
                <$t>::try_from(stub_number(build, <$t>::MAX as u64)).unwrap_or(<$t>::MAX)
            }
        }
    )*};
}

integer_stubs!(i16, i32, i64, u16, u32, u64);

impl<T: StubValue> StubValue for Option<T> {
    fn stub(build: &mut BuildCtx) -> Self {
        Some(T::stub(build))
    }
}

impl StubValue for String {
    fn stub(build: &mut BuildCtx) -> Self {
        format!("stub-{}", build.n())
    }
}

impl StubValue for uuid::Uuid {
    fn stub(build: &mut BuildCtx) -> Self {
        let mut bytes: [u8; 16] = build.rng().random();
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        uuid::Uuid::from_bytes(bytes)
    }
}
