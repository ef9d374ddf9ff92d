-- Conversations, keyed by (platform, chat, user); `session` is a surrogate id that the event log
-- uses, so that deleting a conversation removes every trace of who it was with.
CREATE TABLE conversations (
    session INTEGER PRIMARY KEY AUTOINCREMENT,
    platform TEXT NOT NULL,
    chat TEXT NOT NULL,
    user_id TEXT NOT NULL,
    flow_id TEXT NOT NULL,
    flow_version TEXT NOT NULL,
    node TEXT NOT NULL,
    revision BIGINT NOT NULL,
    entered BIGINT NOT NULL,
    path TEXT NOT NULL,
    misses BIGINT NOT NULL,
    awaiting_resume BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (platform, chat, user_id)
);
CREATE INDEX conversations_updated_at ON conversations (updated_at);
CREATE INDEX conversations_flow ON conversations (flow_id, flow_version);

-- Inbound platform events already applied (deduplication).
CREATE TABLE events (
    event_id TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);
CREATE INDEX events_seen_at ON events (seen_at);

-- Every flow version a conversation started on.
CREATE TABLE flow_versions (
    flow_id TEXT NOT NULL,
    version TEXT NOT NULL,
    source TEXT NOT NULL,
    saved_at BIGINT NOT NULL,
    PRIMARY KEY (flow_id, version)
);

-- The event log: one row per transition.
CREATE TABLE transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session BIGINT NOT NULL,
    flow_id TEXT NOT NULL,
    flow_version TEXT NOT NULL,
    kind TEXT NOT NULL,
    from_node TEXT,
    choice BIGINT,
    to_node TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX transitions_session ON transitions (session, id);
CREATE INDEX transitions_flow ON transitions (flow_id, flow_version);
