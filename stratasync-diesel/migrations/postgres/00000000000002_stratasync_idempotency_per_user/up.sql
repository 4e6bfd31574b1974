-- The idempotency key becomes (user, client, client transaction): one
-- user's key never answers for another user's write. Actions written before
-- this migration have no user and are never taken for a retry.
ALTER TABLE sync_actions ADD COLUMN IF NOT EXISTS user_id TEXT;
ALTER TABLE sync_actions DROP CONSTRAINT IF EXISTS sync_actions_client_tx_unique;
ALTER TABLE sync_actions
    ADD CONSTRAINT sync_actions_user_client_tx_unique UNIQUE (user_id, client_id, client_tx_id);
