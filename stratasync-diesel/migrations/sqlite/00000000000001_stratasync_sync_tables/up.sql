-- The sync log: one row per applied mutation, in commit order.
CREATE TABLE IF NOT EXISTS sync_actions (
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
CREATE INDEX IF NOT EXISTS sync_actions_group_id_id_idx ON sync_actions (group_id, id);

-- Extra group memberships, on top of what the application resolves.
CREATE TABLE IF NOT EXISTS sync_group_memberships (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    group_type TEXT NOT NULL DEFAULT 'workspace',
    created_at TEXT NOT NULL,
    UNIQUE (user_id, group_id)
);

-- Per group (the empty string for global actions): the highest trimmed id.
CREATE TABLE IF NOT EXISTS sync_log_trims (
    group_id TEXT PRIMARY KEY,
    trimmed_through BIGINT NOT NULL
);
