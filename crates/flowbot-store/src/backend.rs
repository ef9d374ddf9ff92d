//! What the SQL modules share: which database, value conversions, placeholder lists.
//!
//! `sql.rs` (the store and its reads) and `batch.rs` (the group-commit writer) both use these,
//! and neither uses the other's internals beyond `batch`'s job type.

use flowbot_core::StoreError;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The longest `last_error` kept for a failed delivery, in characters.
pub(crate) const MAX_ERROR_CHARS: usize = 500;

pub(crate) fn db(e: sqlx::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

/// A `u64` as SQL's signed 64-bit integer (saturating).
pub(crate) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored integer as a `u64` (negative: 0).
pub(crate) fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// `($1,$2,…),(…)`: `rows` rows of `cols` placeholders, numbered for PostgreSQL, plain `?` for
/// SQLite. (The values are bound in order either way. SQLite looks a named parameter up by a
/// linear scan for each bind, which made a 64-row statement quadratic.)
pub(crate) fn rows(backend: Backend, rows: usize, cols: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            s.push(',');
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push(',');
            }
            match backend {
                Backend::Sqlite => s.push('?'),
                Backend::Postgres => {
                    s.push('$');
                    s.push_str(&(r * cols + c + 1).to_string());
                }
            }
        }
        s.push(')');
    }
    s
}

/// `$first,$first+1,…`: `n` numbered placeholders for an `IN (…)` list (both backends).
pub(crate) fn list(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(",")
}

/// An error text fit to keep: at most [`MAX_ERROR_CHARS`] characters.
pub(crate) fn bounded(error: &str) -> String {
    error.chars().take(MAX_ERROR_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_rows() {
        use Backend::{Postgres, Sqlite};
        assert_eq!(rows(Postgres, 2, 3), "($1,$2,$3),($4,$5,$6)");
        assert_eq!(rows(Postgres, 1, 1), "($1)");
        assert_eq!(rows(Sqlite, 2, 2), "(?,?),(?,?)");
        assert_eq!(list(2, 3), "$2,$3,$4");
    }
}
