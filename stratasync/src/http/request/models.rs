//! What decoding knows of the registered models: names and indexed keys.

use stratasync_diesel::Registry;

/// The registered models, as request decoding sees them.
pub(crate) trait Models {
    /// Whether a model of this wire name is registered.
    fn knows(&self, model: &str) -> bool;
    /// Whether batch loads of `model` may select rows by the wire field `key`.
    fn is_indexed(&self, model: &str, key: &str) -> bool;
}

impl Models for Registry {
    fn knows(&self, model: &str) -> bool {
        self.get(model).is_some()
    }

    fn is_indexed(&self, model: &str, key: &str) -> bool {
        self.get(model)
            .is_some_and(|registered| registered.meta().is_indexed(key))
    }
}

/// Models for the decoding tests: `Task`, whose rows batch loads may select
/// by `projectId`, and `Project`.
#[cfg(test)]
pub(super) struct TaskAndProject;

#[cfg(test)]
impl Models for TaskAndProject {
    fn knows(&self, model: &str) -> bool {
        matches!(model, "Task" | "Project")
    }

    fn is_indexed(&self, model: &str, key: &str) -> bool {
        (model, key) == ("Task", "projectId")
    }
}
