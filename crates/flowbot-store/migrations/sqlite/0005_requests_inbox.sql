-- The desk's inbox (`flowbot requests`): the conversation a request came from, so that the
-- desk's completion notice can reach its user (personal data, deleted with the request), and
-- when the desk marked it done.
ALTER TABLE requests ADD COLUMN platform TEXT;
ALTER TABLE requests ADD COLUMN chat TEXT;
ALTER TABLE requests ADD COLUMN user_id TEXT;
ALTER TABLE requests ADD COLUMN completed_at BIGINT;
