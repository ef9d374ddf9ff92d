-- The outbox: what committed steps send (replies) and hand-off deliveries, one mechanism.
-- Each row is written in the transaction of the step that made it and delivered later by a
-- worker, in order per (sink, lane): only the oldest pending row of a lane is ever claimed.

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Who delivers it: a platform (telegram, discord, …) or a hand-off destination
    -- (`handoff:` and its name).
    sink TEXT NOT NULL,
    -- The chat (replies) or the request's reference (hand-offs).
    lane TEXT NOT NULL,
    -- What to send, opaque to the store (personal data: deleted once delivered, cleared when
    -- given up). Empty for hand-off deliveries, which send their request.
    body TEXT NOT NULL,
    -- Hand-off deliveries: the request (deleted with it).
    request BIGINT REFERENCES requests (id) ON DELETE CASCADE,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    -- A worker's claim: its id, and until when.
    owner TEXT,
    lease_until BIGINT,
    -- Hand-off deliveries that went out (replies are deleted instead).
    delivered_at BIGINT,
    -- Too old to send: counted, no longer blocking its lane.
    gave_up_at BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL
);
-- A lane's pending rows, in order (the head check), and the due rows (the claim).
CREATE INDEX outbox_lane ON outbox (sink, lane, id) WHERE delivered_at IS NULL AND gave_up_at IS NULL;
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE delivered_at IS NULL AND gave_up_at IS NULL;
CREATE INDEX outbox_owner ON outbox (owner) WHERE delivered_at IS NULL AND gave_up_at IS NULL;
CREATE INDEX outbox_gave_up ON outbox (sink, lane, created_at) WHERE gave_up_at IS NOT NULL;
CREATE INDEX outbox_request ON outbox (request);
CREATE INDEX outbox_created_at ON outbox (created_at) WHERE request IS NULL;

-- Every hand-off delivery, pending or delivered, moves over (in order), then its table goes.
INSERT INTO outbox (sink, lane, body, request, attempts, next_attempt_at, owner, lease_until,
                    delivered_at, gave_up_at, last_error, created_at)
SELECT 'handoff:' || d.destination, r.reference, '', d.request, d.attempts, d.next_attempt_at, NULL,
       d.lease_until, d.delivered_at, NULL, d.last_error, r.created_at
FROM deliveries d JOIN requests r ON r.id = d.request
ORDER BY d.id;

DROP TABLE deliveries;
