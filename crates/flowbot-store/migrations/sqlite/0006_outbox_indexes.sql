-- Fewer outbox indexes (Telegram throughput issue). Every reply row is inserted, claimed and
-- deleted within moments, and each index was written on each of those: six B-trees per insert
-- and per delete. What is pending is what is in flight (a few hundred rows at most), so the
-- claim, the lease renewal and the counts read it through `outbox_lane`; the retention sweep
-- (daily) scans. Only hand-off deliveries have a request: only they are indexed by it.
DROP INDEX outbox_due;
DROP INDEX outbox_owner;
DROP INDEX outbox_created_at;
DROP INDEX outbox_request;
CREATE INDEX outbox_request ON outbox (request) WHERE request IS NOT NULL;
