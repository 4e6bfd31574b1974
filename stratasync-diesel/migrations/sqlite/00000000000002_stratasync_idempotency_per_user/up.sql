-- The idempotency key becomes (user, client, client transaction): one
-- user's key never answers for another user's write. Actions written before
-- this migration have no user and are never taken for a retry.
-- SQLite cannot change a table's constraints: the log is copied into a new
-- table, and the id sequence carries over so no id is handed out twice.
CREATE TABLE sync_actions_keyed (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    model_id TEXT NOT NULL,
    action TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    group_id TEXT,
    user_id TEXT,
    client_id TEXT,
    client_tx_id TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (user_id, client_id, client_tx_id)
);
INSERT INTO sync_actions_keyed
    (id, model, model_id, action, data, group_id, client_id, client_tx_id, created_at)
SELECT id, model, model_id, action, data, group_id, client_id, client_tx_id, created_at
FROM sync_actions;
DELETE FROM sqlite_sequence WHERE name = 'sync_actions_keyed';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'sync_actions_keyed', seq FROM sqlite_sequence WHERE name = 'sync_actions';
DROP TABLE sync_actions;
ALTER TABLE sync_actions_keyed RENAME TO sync_actions;
CREATE INDEX IF NOT EXISTS sync_actions_group_id_id_idx ON sync_actions (group_id, id);
