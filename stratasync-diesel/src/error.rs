//! Storage errors.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use stratasync_core::SyncId;

/// A failure of the store itself (never a client mistake).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] DieselError),
    /// No connection could be had from the pool.
    #[error("no database connection available: {0}")]
    Pool(String),
    /// The database could not be reached or opened.
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    /// The sync tables could not be created or upgraded.
    #[error("cannot migrate the sync tables: {0}")]
    Migration(String),
}

/// The message of the not-found rejection.
const NOT_FOUND: &str = "Invalid mutation: record not found";

/// The message of an insert whose row exists.
const ALREADY_EXISTS: &str = "Invalid mutation: record already exists";

/// Why one mutation was not applied.
#[derive(Debug, thiserror::Error)]
pub enum MutationError {
    /// The client's mutation is invalid or not allowed; the message is for the client.
    #[error("{0}")]
    Rejected(String),
    /// The row was removed by a committed delete the caller can see, the
    /// action with this id: nothing is left to apply. The write path answers
    /// it as a success (with a warning naming the id), so that a client which
    /// did not know of the delete does not roll its row back into existence.
    #[error("The record was already deleted (by syncId {0}); nothing was applied")]
    AlreadyDeleted(SyncId),
    /// The composite pair an insert names is linked already, by the insert
    /// with this id, in a group the caller holds: nothing is left to apply.
    /// Answered as a success, like [`AlreadyDeleted`](Self::AlreadyDeleted),
    /// so that a client whose link raced another client's does not drop it.
    #[error("The record already exists (linked by syncId {0}); nothing was applied")]
    AlreadyLinked(SyncId),
    /// The store failed; the client sees a generic message.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl MutationError {
    /// A rejection with a client-facing message.
    pub fn rejected(message: impl Into<String>) -> Self {
        MutationError::Rejected(message.into())
    }

    /// The rejection for a row that does not exist or is outside the caller's groups.
    pub fn not_found() -> Self {
        MutationError::rejected(NOT_FOUND)
    }

    /// Whether this is the [`not_found`](Self::not_found) rejection.
    pub fn is_not_found(&self) -> bool {
        matches!(self, MutationError::Rejected(message) if message == NOT_FOUND)
    }

    /// Whether this is the rejection of an insert whose row exists.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, MutationError::Rejected(message) if message == ALREADY_EXISTS)
    }
}

impl From<DieselError> for MutationError {
    fn from(error: DieselError) -> Self {
        match &error {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                MutationError::rejected(ALREADY_EXISTS)
            }
            DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
                MutationError::rejected("Invalid mutation: a referenced record does not exist")
            }
            DieselError::DatabaseError(DatabaseErrorKind::NotNullViolation, _) => {
                MutationError::rejected("Invalid mutation: a required field is missing")
            }
            DieselError::DatabaseError(DatabaseErrorKind::CheckViolation, _) => {
                MutationError::rejected("Invalid mutation: a value breaks a table constraint")
            }
            _ => MutationError::Store(StoreError::Query(error)),
        }
    }
}

impl From<stratasync_core::FieldError> for MutationError {
    fn from(error: stratasync_core::FieldError) -> Self {
        MutationError::Rejected(error.to_string())
    }
}
