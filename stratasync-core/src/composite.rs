use uuid::Uuid;

/// The namespace of composite model ids (PROTOCOL §3).
const COMPOSITE_NAMESPACE: Uuid = Uuid::from_u128(0x92a7_3695_d772_4b43_9fb4_d79f_5fbe_f300);

/// The canonical id of a composite (join-table) row: UUID v5 of
/// `<ModelName>:<JSON array of the key parts>`.
///
/// ```
/// let id = stratasync_core::composite_id("TaskLabel", &["t1", "l1"]);
/// assert_eq!(id.len(), 36);
/// assert_eq!(id, stratasync_core::composite_id("TaskLabel", &["t1", "l1"]));
/// assert_ne!(id, stratasync_core::composite_id("TaskLabel", &["l1", "t1"]));
/// ```
pub fn composite_id<S: AsRef<str>>(model: &str, parts: &[S]) -> String {
    let mut name = String::with_capacity(model.len() + 2 + parts.len() * 40);
    name.push_str(model);
    name.push(':');
    let parts: Vec<&str> = parts.iter().map(AsRef::as_ref).collect();
    name.push_str(&serde_json::to_string(&parts).unwrap_or_default());
    Uuid::new_v5(&COMPOSITE_NAMESPACE, name.as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_uuid_v5_of_the_documented_name() {
        let expected = Uuid::new_v5(
            &Uuid::parse_str("92a73695-d772-4b43-9fb4-d79f5fbef300").unwrap(),
            br#"TaskLabel:["a","b"]"#,
        );
        assert_eq!(composite_id("TaskLabel", &["a", "b"]), expected.to_string());
    }
}
