-- Hand-off requests: a form a user filled in, kept with one delivery per destination.

-- A form being filled in (personal data; cleared by purge once old).
ALTER TABLE conversations ADD COLUMN form TEXT;

-- Submitted requests (personal data; deleted by purge once old, with their deliveries).
CREATE TABLE requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reference TEXT NOT NULL UNIQUE,
    flow_id TEXT NOT NULL,
    form TEXT NOT NULL,
    text TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX requests_created_at ON requests (created_at);

-- One row per request and destination: pending until delivered_at is set. A worker claims a
-- due one by setting lease_until; a failure releases it and moves next_attempt_at.
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request BIGINT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    destination TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT,
    delivered_at BIGINT,
    last_error TEXT
);
CREATE INDEX deliveries_request ON deliveries (request);
CREATE INDEX deliveries_pending ON deliveries (next_attempt_at) WHERE delivered_at IS NULL;
