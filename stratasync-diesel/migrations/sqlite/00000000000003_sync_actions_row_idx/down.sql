DROP INDEX IF EXISTS sync_actions_model_row_idx;
