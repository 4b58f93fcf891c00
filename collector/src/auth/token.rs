//! A bearer token, kept as its SHA-256 digest and compared in constant time.

use std::fmt;

use sha2::{Digest, Sha256};

/// A secret bearer token. Only its SHA-256 digest is kept; [`Token::matches`] compares digests
/// in constant time, and `Debug` never shows it.
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Token {
    /// Returns the token `secret`.
    pub fn new(secret: &str) -> Self {
        Self {
            digest: digest(secret.as_bytes()),
        }
    }

    /// Tells whether `presented` is this token, in time independent of where they differ:
    /// both are hashed, and the digests compared without an early exit.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let other = digest(presented);
        let difference = self
            .digest
            .iter()
            .zip(other.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(difference) == 0
    }

    /// Tells whether an `Authorization` header value is `Bearer <this token>` (the scheme is
    /// case-insensitive).
    pub fn matches_bearer(&self, header: &[u8]) -> bool {
        match bearer(header) {
            Some(presented) => self.matches(presented),
            None => false,
        }
    }
}

/// The credentials of an `Authorization: Bearer <credentials>` value, or `None` for another
/// scheme.
pub fn bearer(header: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"bearer ";
    if header.len() < SCHEME.len() || !header[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    Some(header[SCHEME.len()..].trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_same_token() {
        let token = Token::new("s3cret");
        assert!(token.matches(b"s3cret"));
        assert!(!token.matches(b"s3cre"));
        assert!(!token.matches(b"s3cret "));
        assert!(!token.matches(b""));
        assert!(token.matches_bearer(b"Bearer s3cret"));
        assert!(token.matches_bearer(b"bearer  s3cret"));
        assert!(!token.matches_bearer(b"Basic s3cret"));
        assert!(!token.matches_bearer(b"s3cret"));
        assert!(!format!("{token:?}").contains("s3cret"));
    }
}
