//! The deployment's secrets (`ConversationStore::secret`): one row per name, written once.

use flowbot_core::{StoreError, Timestamp};
use sqlx::{AnyPool, Row};

use crate::backend::{db, int};

/// The secret kept under `name`, after keeping `fresh` there if none was: an insert that yields
/// to an existing row, then a read, so that concurrent first callers all get the winner's.
pub(crate) async fn keep(
    pool: &AnyPool,
    name: &str,
    fresh: &[u8],
    now: Timestamp,
) -> Result<Vec<u8>, StoreError> {
    sqlx::query(
        "INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(hex(fresh))
    .bind(int(now.0))
    .execute(pool)
    .await
    .map_err(db)?;
    let row = sqlx::query("SELECT value FROM secrets WHERE name = $1")
        .bind(name)
        .fetch_one(pool)
        .await
        .map_err(db)?;
    let value: String = row.try_get("value").map_err(db)?;
    // The message names the secret, never its value.
    unhex(&value).ok_or_else(|| StoreError::Database(format!("the secret `{name}` is malformed")))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(hex(&bytes), "0001abff");
        assert_eq!(unhex("0001abff").as_deref(), Some(&bytes[..]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
