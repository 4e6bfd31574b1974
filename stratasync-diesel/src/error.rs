//! Storage errors, and which side of the wire a database error belongs to.

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
    /// The store is at capacity: no connection (or snapshot slot) freed up
    /// within its wait bound. Answered with `503` and `Retry-After`.
    #[error("the store is busy: {0}")]
    Unavailable(String),
    /// The database could not be reached or opened.
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    /// The sync tables could not be created or upgraded.
    #[error("cannot migrate the sync tables: {0}")]
    Migration(String),
}

impl StoreError {
    /// Whether the database is unreachable, overloaded or timed out: a
    /// retry after a pause can succeed (HTTP `503` with `Retry-After`).
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Pool(_) | StoreError::Unavailable(_) | StoreError::Connect(_) => true,
            StoreError::Query(error) => matches!(
                classify(error),
                Fault::Unavailable | Fault::Broken | Fault::Conflict
            ),
            StoreError::Migration(_) => false,
        }
    }
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
    /// The row was removed by a committed delete the caller can see:
    /// nothing is left to apply. The write path logs a delete of the row
    /// with the mutation's idempotency key and answers it as a success with
    /// a warning naming the delete, so that a client which did not know of
    /// the delete does not roll its row back into existence
    /// (docs/protocol.md, "Moot writes").
    #[error("The record was already deleted (by syncId {}); nothing was applied", .0.by)]
    AlreadyDeleted(Settled),
    /// A write to a row that does not exist, whose payload references a
    /// row removed by a committed delete the caller can see: the insert
    /// of the row was refused for that reference, or the row went with it.
    /// Answered like [`AlreadyDeleted`](Self::AlreadyDeleted), so that a
    /// client whose refused insert was rolled back does not bring the row
    /// back when a later write to it is refused too.
    #[error("A record it references was already deleted (by syncId {}); nothing was applied", .0.by)]
    ReferenceDeleted(Settled),
    /// The store failed; the client sees a generic message.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The committed delete that made a mutation moot
/// ([`MutationError::AlreadyDeleted`], [`MutationError::ReferenceDeleted`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// The delete's sync id.
    pub by: SyncId,
    /// The delete's group: the moot mutation's own delete is logged in it.
    pub(crate) group_id: Option<String>,
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

    /// The delete that made this mutation moot, if it is moot.
    pub fn settled(&self) -> Option<&Settled> {
        match self {
            MutationError::AlreadyDeleted(settled) | MutationError::ReferenceDeleted(settled) => {
                Some(settled)
            }
            _ => None,
        }
    }

    /// Whether this is the rejection of an insert whose row exists.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, MutationError::Rejected(message) if message == ALREADY_EXISTS)
    }
}

/// Which side of the wire a database error belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The client's data (SQLSTATE classes 22 and 23, and SQLite's
    /// equivalents): a per-transaction rejection.
    Client,
    /// A deadlock or serialization failure (40P01, 40001): the transaction
    /// can be retried as it is.
    Conflict,
    /// A timeout or an administrator's cancel (57014, 57P0x), or SQLite
    /// busy: the database cannot serve now.
    Unavailable,
    /// The connection is lost or its transaction state is unknown; it must
    /// not be used again.
    Broken,
    /// Any other failure of the server side.
    Server,
}

/// The start of PostgreSQL's data-exception (class 22) messages: diesel
/// reports that class as an unknown kind, so the message tells it apart.
const DATA_EXCEPTIONS: &[&str] = &[
    "out of range",
    "invalid input",
    "value too long",
    "numeric field overflow",
    "division by zero",
    "invalid byte sequence",
    "character with byte sequence",
    "unsupported unicode escape",
    "datatype mismatch",
];

/// Sorts a database error into a [`Fault`].
pub(crate) fn classify(error: &DieselError) -> Fault {
    let DieselError::DatabaseError(kind, info) = error else {
        return match error {
            DieselError::BrokenTransactionManager
            | DieselError::AlreadyInTransaction
            | DieselError::NotInTransaction
            | DieselError::RollbackErrorOnCommit { .. } => Fault::Broken,
            DieselError::SerializationError(_) | DieselError::DeserializationError(_) => {
                Fault::Server
            }
            _ => Fault::Server,
        };
    };
    let message = info.message().to_ascii_lowercase();
    match kind {
        DatabaseErrorKind::UniqueViolation
        | DatabaseErrorKind::ForeignKeyViolation
        | DatabaseErrorKind::NotNullViolation
        | DatabaseErrorKind::CheckViolation
        | DatabaseErrorKind::RestrictViolation
        | DatabaseErrorKind::ExclusionViolation => Fault::Client,
        DatabaseErrorKind::SerializationFailure => Fault::Conflict,
        DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => {
            Fault::Broken
        }
        _ if message.starts_with("deadlock detected") => Fault::Conflict,
        _ if message.starts_with("canceling statement")
            || message.contains("database is locked")
            || message.contains("database is busy") =>
        {
            Fault::Unavailable
        }
        _ if message.starts_with("terminating connection")
            || message.contains("shutting down")
            || message.contains("starting up")
            || message.contains("connection") && message.contains("closed") =>
        {
            Fault::Broken
        }
        _ if DATA_EXCEPTIONS.iter().any(|m| message.contains(m)) => Fault::Client,
        _ => Fault::Server,
    }
}

impl From<DieselError> for MutationError {
    fn from(error: DieselError) -> Self {
        if classify(&error) != Fault::Client {
            return MutationError::Store(StoreError::Query(error));
        }
        let kind = match &error {
            DieselError::DatabaseError(kind, _) => Some(kind),
            _ => None,
        };
        MutationError::rejected(match kind {
            Some(DatabaseErrorKind::UniqueViolation) => ALREADY_EXISTS,
            Some(DatabaseErrorKind::ForeignKeyViolation | DatabaseErrorKind::RestrictViolation) => {
                "Invalid mutation: a referenced record does not exist"
            }
            Some(DatabaseErrorKind::NotNullViolation) => {
                "Invalid mutation: a required field is missing"
            }
            Some(DatabaseErrorKind::CheckViolation | DatabaseErrorKind::ExclusionViolation) => {
                "Invalid mutation: a value breaks a table constraint"
            }
            _ => "Invalid mutation: a value cannot be stored (out of range or malformed)",
        })
    }
}

impl From<stratasync_core::FieldError> for MutationError {
    fn from(error: stratasync_core::FieldError) -> Self {
        MutationError::Rejected(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(kind: DatabaseErrorKind, message: &str) -> DieselError {
        DieselError::DatabaseError(kind, Box::new(message.to_owned()))
    }

    #[test]
    fn database_errors_are_sorted_by_whose_fault_they_are() {
        use DatabaseErrorKind::{ClosedConnection, SerializationFailure, UniqueViolation, Unknown};
        let cases = [
            (db(UniqueViolation, "duplicate key"), Fault::Client),
            (
                db(Unknown, "date/time field value out of range"),
                Fault::Client,
            ),
            (
                db(Unknown, "invalid input syntax for type uuid"),
                Fault::Client,
            ),
            (
                db(Unknown, "value too long for type character varying(5)"),
                Fault::Client,
            ),
            (db(Unknown, "deadlock detected"), Fault::Conflict),
            (
                db(SerializationFailure, "could not serialize access"),
                Fault::Conflict,
            ),
            (
                db(Unknown, "canceling statement due to statement timeout"),
                Fault::Unavailable,
            ),
            (db(Unknown, "database is locked"), Fault::Unavailable),
            (
                db(
                    Unknown,
                    "terminating connection due to administrator command",
                ),
                Fault::Broken,
            ),
            (db(ClosedConnection, "connection closed"), Fault::Broken),
            (DieselError::BrokenTransactionManager, Fault::Broken),
            (
                db(Unknown, "relation \"no_such_table\" does not exist"),
                Fault::Server,
            ),
            (db(Unknown, "current transaction is aborted"), Fault::Server),
        ];
        for (error, fault) in cases {
            assert_eq!(classify(&error), fault, "{error}");
        }
    }

    #[test]
    fn client_faults_are_rejections_without_sql() {
        let error = MutationError::from(db(
            DatabaseErrorKind::Unknown,
            "date/time field value out of range: \"-29719-04-05\"",
        ));
        assert_eq!(
            error.to_string(),
            "Invalid mutation: a value cannot be stored (out of range or malformed)"
        );
        let error = MutationError::from(db(DatabaseErrorKind::Unknown, "deadlock detected"));
        assert!(matches!(error, MutationError::Store(_)));
        assert!(matches!(&error, MutationError::Store(e) if e.is_unavailable()));
        let error = MutationError::from(db(DatabaseErrorKind::Unknown, "syntax error at or near"));
        assert!(matches!(&error, MutationError::Store(e) if !e.is_unavailable()));
    }
}
