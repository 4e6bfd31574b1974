CREATE TABLE sync_actions_unkeyed (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    model_id TEXT NOT NULL,
    action TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    group_id TEXT,
    client_id TEXT,
    client_tx_id TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (client_id, client_tx_id)
);
INSERT INTO sync_actions_unkeyed
    (id, model, model_id, action, data, group_id, client_id, client_tx_id, created_at)
SELECT id, model, model_id, action, data, group_id, client_id, client_tx_id, created_at
FROM sync_actions;
DELETE FROM sqlite_sequence WHERE name = 'sync_actions_unkeyed';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'sync_actions_unkeyed', seq FROM sqlite_sequence WHERE name = 'sync_actions';
DROP TABLE sync_actions;
ALTER TABLE sync_actions_unkeyed RENAME TO sync_actions;
CREATE INDEX IF NOT EXISTS sync_actions_group_id_id_idx ON sync_actions (group_id, id);
