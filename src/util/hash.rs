//! The one stable hash of the crate: 64-bit FNV-1a, the same on every machine and in every
//! version of seedbed, so processes built separately agree on what it names (lock keys, sequence
//! keys, cache file names, database names).

/// A stable 64-bit FNV-1a hash of `text`.
///
/// ```
/// use seedbed::context::stable_hash;
/// assert_eq!(stable_hash(""), 0xcbf29ce484222325);
/// assert_ne!(stable_hash("a"), stable_hash("b"));
/// ```
pub fn stable_hash(text: &str) -> u64 {
    stable_hash_bytes(text.as_bytes())
}

/// [`stable_hash`] over bytes; usable in constants.
pub const fn stable_hash_bytes(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}
