//! Session ids: issued only by the server, signed, and carried in an `HttpOnly` cookie.
//!
//! A session id is 16 random bytes; its cookie value is `ID.MAC`, both in lower-case hex, where
//! `MAC` is HMAC-SHA256 of the id under the deployment's session key, cut to 16 bytes. A cookie
//! whose MAC does not verify (a made-up, altered or foreign id) is ignored and a new id issued.
//! Nothing is kept per session beside the conversation itself, and the key is kept in the store
//! (`ConversationStore::secret`), so every process and every restart accepts the same cookies.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use flowbot_core::ConversationKey;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::CHAT_PATH;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "flowbot_session";
/// How long the session cookie lives: as long as a conversation can (30 days).
const COOKIE_MAX_AGE: u64 = 30 * 24 * 60 * 60;
/// The store's name for the session key.
pub(crate) const KEY_NAME: &str = "web.session";
/// The session key's length in bytes.
pub(crate) const KEY_LEN: usize = 32;
const ID_LEN: usize = 16;
const MAC_LEN: usize = 16;
/// What the MAC covers before the id, so that the key signs nothing else by accident.
const DOMAIN: &[u8] = b"flowbot-web session id v1\0";

/// Issues and checks session ids.
#[derive(Clone)]
pub(crate) struct Sessions {
    key: Vec<u8>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

/// The session of a request: its cookie's, or a new one to set.
#[derive(Debug)]
pub(crate) struct Session {
    /// The id, in hex: the conversation key's chat and user.
    pub(crate) id: String,
    /// The cookie value: `ID.MAC`.
    value: String,
    /// Issued by this request (the client had no valid cookie).
    pub(crate) new: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("no randomness for a session id: {0}")]
pub(crate) struct NoRandomness(String);

impl Sessions {
    /// `key`: the deployment's session key (at least 16 bytes).
    pub(crate) fn new(key: Vec<u8>) -> Self {
        Sessions { key }
    }

    fn mac(&self, id: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(DOMAIN);
        mac.update(id);
        mac
    }

    /// The session a request's cookie names, if its id was issued here; else a new one.
    pub(crate) fn of(&self, headers: &HeaderMap) -> Result<Session, NoRandomness> {
        let existing = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| *name == COOKIE)
            .find_map(|(_, value)| self.verify(value));
        match existing {
            Some(session) => Ok(session),
            None => self.issue(),
        }
    }

    fn verify(&self, value: &str) -> Option<Session> {
        let (id, mac) = value.split_once('.')?;
        let id_bytes = unhex(id, ID_LEN)?;
        let mac_bytes = unhex(mac, MAC_LEN)?;
        self.mac(&id_bytes).verify_truncated_left(&mac_bytes).ok()?;
        Some(Session { id: id.to_owned(), value: value.to_owned(), new: false })
    }

    fn issue(&self) -> Result<Session, NoRandomness> {
        let mut id = [0u8; ID_LEN];
        getrandom::getrandom(&mut id).map_err(|e| NoRandomness(e.to_string()))?;
        let mac = self.mac(&id).finalize().into_bytes();
        let id = hex(&id);
        let value = format!("{id}.{}", hex(&mac[..MAC_LEN]));
        Ok(Session { id, value, new: true })
    }
}

impl Session {
    pub(crate) fn key(&self) -> ConversationKey {
        ConversationKey::new("web", &self.id, &self.id)
    }

    /// Adds the cookie to a response: for a new session, and again on every input, so that it
    /// lives as long as the conversation does (30 days after the last change).
    pub(crate) fn attach(&self, secure: bool, refresh: bool, mut response: Response) -> Response {
        if self.new || refresh {
            let cookie = format!(
                "{COOKIE}={}; Path={CHAT_PATH}; Max-Age={COOKIE_MAX_AGE}; HttpOnly; SameSite=Strict{}",
                self.value,
                if secure { "; Secure" } else { "" }
            );
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
        }
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exactly `len` bytes as lower-case hex.
fn unhex(s: &str, len: usize) -> Option<Vec<u8>> {
    if s.len() != 2 * len || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    (0..len).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, format!("{COOKIE}={value}").parse().unwrap());
        headers
    }

    #[test]
    fn only_issued_ids_are_taken() {
        let sessions = Sessions::new(vec![7; KEY_LEN]);
        let issued = sessions.of(&HeaderMap::new()).unwrap();
        assert!(issued.new);
        assert_eq!(issued.id.len(), 32);
        let again = sessions.of(&cookie(&issued.value)).unwrap();
        assert!(!again.new);
        assert_eq!(again.id, issued.id);

        let zeros = format!("{}.{}", "0".repeat(32), "0".repeat(32));
        let mut altered = issued.value.clone();
        let last = if altered.ends_with('0') { "1" } else { "0" };
        altered.replace_range(altered.len() - 1.., last);
        let other_key = Sessions::new(vec![8; KEY_LEN]).of(&HeaderMap::new()).unwrap().value;
        for made_up in
            ["0".repeat(32), zeros, altered, other_key, issued.value.to_uppercase(), issued.id]
        {
            let fresh = sessions.of(&cookie(&made_up)).unwrap();
            assert!(fresh.new, "{made_up}");
            assert_ne!(fresh.value, made_up);
        }
    }

    #[test]
    fn hex_is_exact() {
        assert_eq!(unhex("00ff", 2), Some(vec![0, 255]));
        assert_eq!(unhex("00FF", 2), None);
        assert_eq!(unhex("00f", 2), None);
        assert_eq!(unhex("0g", 1), None);
    }
}
