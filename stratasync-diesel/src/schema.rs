//! The sync tables (PROTOCOL §10), in portable SQL types.

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::*;

    /// The sync log.
    sync_actions (id) {
        id -> BigInt,
        model -> Text,
        model_id -> Text,
        action -> Text,
        data -> PortableJson,
        group_id -> Nullable<Text>,
        user_id -> Nullable<Text>,
        client_id -> Nullable<Text>,
        client_tx_id -> Nullable<Text>,
        created_at -> Instant,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::*;

    /// Group memberships beyond what the application resolves.
    sync_group_memberships (id) {
        id -> PortableUuid,
        user_id -> Text,
        group_id -> Text,
        group_type -> Text,
        created_at -> Instant,
    }
}

diesel::table! {
    /// The highest trimmed action id of each group (`""` for global actions).
    sync_log_trims (group_id) {
        group_id -> Text,
        trimmed_through -> BigInt,
    }
}
