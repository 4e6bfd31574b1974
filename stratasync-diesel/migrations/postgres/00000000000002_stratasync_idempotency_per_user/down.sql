ALTER TABLE sync_actions DROP CONSTRAINT IF EXISTS sync_actions_user_client_tx_unique;
ALTER TABLE sync_actions
    ADD CONSTRAINT sync_actions_client_tx_unique UNIQUE (client_id, client_tx_id);
ALTER TABLE sync_actions DROP COLUMN IF EXISTS user_id;
