//! UI sessions: random 128-bit ids handed out by `POST /login`, kept in memory with an expiry.

use std::collections::HashMap;
use std::io::Read as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// How long a session lasts after login: 12 h.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most live sessions; a login beyond it evicts the session closest to expiry.
pub const MAX_SESSIONS: usize = 10_000;

/// The live sessions, by the SHA-256 of their id (a lookup reveals nothing about other ids).
#[derive(Debug, Default)]
pub struct Sessions {
    live: Mutex<HashMap<[u8; 32], Instant>>,
}

/// Why a session could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot read random bytes for a session id: {0}")]
pub struct SessionError(#[from] std::io::Error);

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

fn random_id() -> Result<String, SessionError> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Sessions {
    /// Creates a session valid for [`SESSION_TTL`] and returns its id (32 hex digits).
    pub fn create(&self, now: Instant) -> Result<String, SessionError> {
        let id = random_id()?;
        let mut live = self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        live.retain(|_, expiry| *expiry > now);
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k)
        {
            live.remove(&oldest);
        }
        live.insert(key(&id), now + SESSION_TTL);
        Ok(id)
    }

    /// Tells whether `id` is a live session.
    pub fn is_live(&self, id: &str, now: Instant) -> bool {
        let live = self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        live.get(&key(id)).is_some_and(|expiry| *expiry > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_ids_differ() {
        let sessions = Sessions::default();
        let now = Instant::now();
        let a = sessions.create(now).unwrap();
        let b = sessions.create(now).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(sessions.is_live(&a, now));
        assert!(!sessions.is_live("0123", now));
        assert!(!sessions.is_live(&a, now + SESSION_TTL));
    }
}
