//! The dashboard's sign-in sessions in memory: the hash of each id and its expiry, bounded.
//! How sessions are made, carried and ended is the spec of [`crate::web::session`]; this store
//! knows nothing of HTTP, so the state can hold it without depending on the web part.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::nodes::token::{self, TokenHash};

/// How long a session lasts after signing in; it is not extended by use.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// The most sessions held at once.
pub const MAX_SESSIONS: usize = 64;

/// A session id is 64 lower-case hex characters, as [`token::generate_token`] makes them.
const ID_LEN: usize = 64;

#[derive(Debug, Error)]
pub enum SessionError {
    #[error("no random bytes for a session id: {0}")]
    Random(#[from] getrandom::Error),
}

/// The live sessions: the hash of each id and when it expires.
#[derive(Debug)]
pub struct SessionStore {
    sessions: Mutex<HashMap<TokenHash, Instant>>,
    lifetime: Duration,
    max: usize,
}

impl Default for SessionStore {
    fn default() -> Self {
        Self::new(SESSION_LIFETIME, MAX_SESSIONS)
    }
}

impl SessionStore {
    /// A store whose sessions last `lifetime`, holding at most `max` (at least one).
    pub fn new(lifetime: Duration, max: usize) -> Self {
        Self {
            sessions: Mutex::new(HashMap::new()),
            lifetime,
            max: max.max(1),
        }
    }

    /// How long a session lasts.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A new session, valid from `now` for the store's lifetime; its id.
    pub fn create(&self, now: Instant) -> Result<String, SessionError> {
        let id = token::generate_token()?;
        let mut sessions = self.lock();
        sessions.retain(|_, expires| *expires > now);
        while sessions.len() >= self.max {
            let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, expires)| **expires)
                .map(|(hash, _)| *hash)
            else {
                break;
            };
            sessions.remove(&oldest);
        }
        sessions.insert(token::hash_token(&id), now + self.lifetime);
        Ok(id)
    }

    /// Whether `id` names a session that has not expired at `now`; an expired one is dropped.
    pub fn is_valid(&self, id: &str, now: Instant) -> bool {
        if !looks_like_id(id) {
            return false;
        }
        let hash = token::hash_token(id);
        let mut sessions = self.lock();
        match sessions.get(&hash) {
            Some(expires) if *expires > now => true,
            Some(_) => {
                sessions.remove(&hash);
                false
            }
            None => false,
        }
    }

    /// Ends the session `id`; whether there was one.
    pub fn remove(&self, id: &str) -> bool {
        looks_like_id(id) && self.lock().remove(&token::hash_token(id)).is_some()
    }

    /// How many sessions are held (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A poisoned lock only means a panic mid-update of a plain map; it is still usable.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenHash, Instant>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn looks_like_id(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_valid_until_it_expires_and_then_dropped() {
        let store = SessionStore::new(Duration::from_secs(60), 8);
        let start = Instant::now();
        let id = store.create(start).unwrap();
        assert_eq!(id.len(), 64);
        assert!(store.is_valid(&id, start));
        assert!(store.is_valid(&id, start + Duration::from_secs(59)));
        assert!(!store.is_valid(&id, start + Duration::from_secs(60)));
        assert!(
            store.is_empty(),
            "an expired session is dropped when presented"
        );
        assert!(!store.is_valid(&id, start), "and stays gone");
    }

    #[test]
    fn ids_are_random_and_only_exact_ids_match() {
        let store = SessionStore::default();
        let now = Instant::now();
        let a = store.create(now).unwrap();
        let b = store.create(now).unwrap();
        assert_ne!(a, b);
        assert!(store.is_valid(&a, now) && store.is_valid(&b, now));
        let mut wrong = a.clone();
        wrong.replace_range(0..1, if a.starts_with('0') { "1" } else { "0" });
        assert!(!store.is_valid(&wrong, now));
        assert!(!store.is_valid(&a[..63], now));
        assert!(!store.is_valid("", now));
        assert!(!store.is_valid(&format!("{a}0"), now));
    }

    #[test]
    fn removing_a_session_ends_it() {
        let store = SessionStore::default();
        let now = Instant::now();
        let id = store.create(now).unwrap();
        assert!(store.remove(&id));
        assert!(!store.is_valid(&id, now));
        assert!(!store.remove(&id), "already gone");
    }

    #[test]
    fn the_store_is_bounded_and_drops_expired_sessions_first() {
        let store = SessionStore::new(Duration::from_secs(60), 3);
        let start = Instant::now();
        let first = store.create(start).unwrap();
        let second = store.create(start + Duration::from_secs(1)).unwrap();
        let third = store.create(start + Duration::from_secs(2)).unwrap();
        assert_eq!(store.len(), 3);
        let fourth = store.create(start + Duration::from_secs(3)).unwrap();
        assert_eq!(store.len(), 3, "never more than the bound");
        let at = start + Duration::from_secs(3);
        assert!(!store.is_valid(&first, at), "the oldest made room");
        for id in [&second, &third, &fourth] {
            assert!(store.is_valid(id, at));
        }
        // Long after, every old one has expired: creating drops them all.
        let later = start + Duration::from_secs(120);
        let fifth = store.create(later).unwrap();
        assert_eq!(store.len(), 1);
        assert!(store.is_valid(&fifth, later));
    }
}
