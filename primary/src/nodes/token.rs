//! Tokens: generation, hashing for storage, constant-time comparison.
//!
//! Node tokens are stored only as SHA-256 hashes; the enrollment and admin tokens are compared
//! in constant time (over their hashes, so the length does not leak either). No token is ever
//! logged.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub type TokenHash = [u8; 32];

/// 32 random bytes as 64 hex characters.
pub fn generate_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(to_hex(&bytes))
}

pub fn hash_token(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

pub fn tokens_match(presented: &str, expected: &str) -> bool {
    hash_token(presented).ct_eq(&hash_token(expected)).into()
}

pub use pivitals_common::hex::to_hex;

pub fn from_hex(text: &str) -> Option<TokenHash> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_round_trips() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        let hash = hash_token(&a);
        assert_eq!(from_hex(&to_hex(&hash)), Some(hash));
        assert!(tokens_match(&a, &a));
        assert!(!tokens_match(&a, &b));
        assert!(!tokens_match("", &b));
    }
}
