//! The one way the store opens a transaction: a guard that commits only when
//! told to, and a pooled connection that never goes back to the pool inside
//! a transaction.
//!
//! [`Scope::begin`] opens a transaction (a savepoint when one is already
//! open) and must end with [`Scope::commit`] or [`Scope::rollback`]. Every
//! other exit (an early return, `?`, a panic, a cancelled future) drops the
//! scope unfinished; the drop marks the connection's transaction state
//! broken, so nothing more can run in that transaction and the connection is
//! never used again. A [`Leased`] connection checks that state when it is
//! dropped and, if a transaction is still open, closes the connection
//! instead of returning it to the pool: the database then rolls the
//! transaction back and releases its locks at once.

use diesel_async::{AsyncConnection, TransactionManager};

use crate::{StoreConn, StoreError};

type Manager<C> = <C as AsyncConnection>::TransactionManager;

/// An open transaction or savepoint on a borrowed connection.
pub(crate) struct Scope<'c, C: StoreConn> {
    conn: &'c mut C,
    open: bool,
}

impl<'c, C: StoreConn> Scope<'c, C> {
    /// Opens a transaction on `conn`, or a savepoint inside the open one.
    pub(crate) async fn begin(conn: &'c mut C) -> Result<Scope<'c, C>, StoreError> {
        Manager::<C>::begin_transaction(conn).await?;
        Ok(Scope { conn, open: true })
    }

    /// The connection, inside the transaction.
    pub(crate) fn conn(&mut self) -> &mut C {
        self.conn
    }

    /// Commits (releases a savepoint).
    pub(crate) async fn commit(mut self) -> Result<(), StoreError> {
        self.open = false;
        Ok(Manager::<C>::commit_transaction(self.conn).await?)
    }

    /// Rolls back (to the savepoint). When this fails the connection's
    /// transaction state is broken and the connection is not reused.
    pub(crate) async fn rollback(mut self) -> Result<(), StoreError> {
        self.open = false;
        Ok(Manager::<C>::rollback_transaction(self.conn).await?)
    }

    /// Commits when `outcome` is a success, rolls back otherwise; a failed
    /// commit turns the success into that failure.
    pub(crate) async fn finish<T, E: From<StoreError>>(
        self,
        outcome: Result<T, E>,
    ) -> Result<T, E> {
        match outcome {
            Ok(value) => {
                self.commit().await?;
                Ok(value)
            }
            Err(error) => {
                if let Err(rollback) = self.rollback().await {
                    tracing::warn!(%rollback, "rollback failed; the connection is discarded");
                }
                Err(error)
            }
        }
    }
}

impl<C: StoreConn> Drop for Scope<'_, C> {
    fn drop(&mut self) {
        if self.open {
            // Left without commit or rollback: nothing may run in this
            // transaction any more, and the connection is discarded.
            mark_broken(self.conn);
        }
    }
}

/// Marks `conn` as not to be pooled again: a [`Leased`] connection so marked
/// is closed when dropped (see [`mark_clean`]).
pub(crate) fn mark_broken<C: StoreConn>(conn: &mut C) {
    Manager::<C>::transaction_manager_status_mut(conn).set_in_error();
}

/// Undoes [`mark_broken`] on a connection that holds no transaction.
pub(crate) fn mark_clean<C: StoreConn>(conn: &mut C) {
    *Manager::<C>::transaction_manager_status_mut(conn) =
        diesel::connection::TransactionManagerStatus::default();
}

/// Whether `conn` is inside a transaction or in an unknown transaction state.
pub(crate) fn is_dirty<C: StoreConn>(conn: &mut C) -> bool {
    Manager::<C>::is_broken_transaction_manager(conn)
}

/// A connection taken from the pool; see the module documentation.
pub(crate) struct Leased<C: StoreConn>(Option<C::Pooled>);

impl<C: StoreConn> Leased<C> {
    /// A connection from `pool`.
    pub(crate) async fn get(pool: &C::Pool) -> Result<Leased<C>, StoreError> {
        Ok(Leased(Some(C::lease(pool).await?)))
    }

    /// The connection.
    pub(crate) fn conn(&mut self) -> &mut C {
        match &mut self.0 {
            Some(conn) => conn,
            None => unreachable!("a leased connection is only taken in drop"),
        }
    }
}

impl<C: StoreConn> Drop for Leased<C> {
    fn drop(&mut self) {
        if let Some(mut conn) = self.0.take()
            && is_dirty(&mut *conn)
        {
            // Closing the connection ends its transaction in the database.
            C::discard(conn);
        }
    }
}
