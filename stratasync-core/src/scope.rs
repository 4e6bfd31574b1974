/// Who is asking and which groups they may see: handed to every scope filter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilterContext {
    /// The user's id (also the id of their personal group).
    pub user_id: String,
    /// The effective groups of the request, in request order.
    pub authorized_group_ids: Vec<String>,
    /// The effective groups without the personal group.
    pub workspace_group_ids: Vec<String>,
}

impl FilterContext {
    /// A context for `user_id` reading `groups`.
    pub fn new(user_id: impl Into<String>, groups: Vec<String>) -> Self {
        let user_id = user_id.into();
        let workspace_group_ids = groups.iter().filter(|g| **g != user_id).cloned().collect();
        FilterContext {
            user_id,
            authorized_group_ids: groups,
            workspace_group_ids,
        }
    }

    /// Whether `group` is one of the effective groups.
    pub fn holds(&self, group: &str) -> bool {
        self.authorized_group_ids.iter().any(|g| g == group)
    }
}
