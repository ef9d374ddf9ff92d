//! Button tokens: the opaque `callback_data` / `custom_id` a button press carries back.
//!
//! A token is `REV:NODE:ACTION`: the revision at which the conversation entered the node the
//! button belongs to, that node's id, and the action (`0`–`9` a choice, `b` back, `r` restart,
//! `c` resume after a pause; in a form, `s` submit, `x` fix, `u0`–`u9` "unknown" for a field and
//! `f0`–`f9` "type the answer to a field", which opens a text box on platforms that need one).
//! A press is applied only when the token names the conversation's current node *and* the
//! revision at which it entered it, so a press on an old message, a second press on the same
//! message, or a made-up token changes nothing. Tokens need no signature: the only token that
//! does anything is one the user could have pressed anyway, and conversations are keyed by user.

use std::fmt;

/// What a button does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The question's choice with this index (0-based).
    Choice(u8),
    Back,
    Restart,
    /// Resume where the conversation left off (after a pause).
    Resume,
    /// A form's confirmation: send the answers.
    Submit,
    /// A form's confirmation: change an answer.
    Fix,
    /// A form's field (by index) answered "unknown" (分からない).
    Unknown(u8),
    /// A form's field (by index): open a box to type the answer in. The press itself changes
    /// nothing; the typed answer comes back as `Input::Answer` with this token.
    Field(u8),
}

/// A parsed or to-be-rendered button token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    pub rev: u64,
    pub node: &'a str,
    pub action: Action,
}

/// The longest a token can be for a node with this id: 20 digits of revision, the id, two action
/// characters and two separators.
pub fn max_token_len(node_id: &str) -> usize {
    u64::MAX.to_string().len() + 1 + node_id.len() + 1 + 2
}

impl<'a> Token<'a> {
    /// Parses a token; `None` for anything that is not exactly the shape `Display` writes.
    pub fn parse(s: &'a str) -> Option<Self> {
        if s.len() > 128 {
            return None;
        }
        let (rev, rest) = s.split_once(':')?;
        let (node, action) = rest.rsplit_once(':')?;
        if rev.is_empty() || rev.len() > 20 || !rev.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let rev = rev.parse().ok()?;
        let action = match action.as_bytes() {
            [d @ b'0'..=b'9'] => Action::Choice(d - b'0'),
            b"b" => Action::Back,
            b"r" => Action::Restart,
            b"c" => Action::Resume,
            b"s" => Action::Submit,
            b"x" => Action::Fix,
            [b'u', d @ b'0'..=b'9'] => Action::Unknown(d - b'0'),
            [b'f', d @ b'0'..=b'9'] => Action::Field(d - b'0'),
            _ => return None,
        };
        Some(Token { rev, node, action })
    }
}

impl fmt::Display for Token<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:", self.rev, self.node)?;
        match self.action {
            Action::Choice(i) => write!(f, "{i}"),
            Action::Back => f.write_str("b"),
            Action::Restart => f.write_str("r"),
            Action::Resume => f.write_str("c"),
            Action::Submit => f.write_str("s"),
            Action::Fix => f.write_str("x"),
            Action::Unknown(i) => write!(f, "u{i}"),
            Action::Field(i) => write!(f, "f{i}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for action in [
            Action::Choice(0),
            Action::Choice(9),
            Action::Back,
            Action::Restart,
            Action::Resume,
            Action::Submit,
            Action::Fix,
            Action::Unknown(9),
            Action::Field(0),
        ] {
            let t = Token { rev: u64::MAX, node: "m3_absent-wait", action };
            let s = t.to_string();
            assert!(s.len() <= max_token_len(t.node));
            assert_eq!(Token::parse(&s), Some(t));
        }
    }

    #[test]
    fn refuses_garbage() {
        for s in [
            "",
            ":",
            "::",
            "1:q1",
            "x:q1:0",
            "1:q1:10",
            "1:q1:y",
            "1:q1:u",
            "1:q1:f10",
            "1:q1:s0",
            "-1:q1:0",
            "99999999999999999999:q1:0",
        ] {
            assert_eq!(Token::parse(s), None, "{s:?}");
        }
        assert_eq!(Token::parse(&"9".repeat(200)), None);
    }
}
