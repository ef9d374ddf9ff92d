-- The durable inbox of long polling (Telegram throughput issue): updates fetched and not handled
-- yet, kept so that they can be confirmed to the platform at once and handled while fetching
-- goes on. A row lives from its fetch until its step is committed (moments); what is left after
-- a crash is taken up at the next start. `source` names the poller (`telegram:<bot id>`),
-- `update_id` is the platform's id of the update, `body` the update as received (it may quote
-- what the user typed: purged with the event ids it is deduplicated by).
CREATE TABLE inbound (
    source TEXT NOT NULL,
    update_id INTEGER NOT NULL,
    body TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (source, update_id)
);
