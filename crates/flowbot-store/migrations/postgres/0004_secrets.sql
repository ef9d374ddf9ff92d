-- The deployment's secrets, by name: e.g. the web chat's key for signing session ids, kept here
-- so that every process and every restart uses the same one. Written once (the first writer
-- wins) and never purged.
CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    -- Hex.
    value TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
