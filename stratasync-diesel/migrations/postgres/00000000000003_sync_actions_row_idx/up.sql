-- The actions on one row, newest first: how a mutation of a row that a
-- committed delete removed finds that delete.
CREATE INDEX IF NOT EXISTS sync_actions_model_row_idx ON sync_actions (model, model_id, id);
