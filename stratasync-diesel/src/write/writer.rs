//! The [`Writer`]: the store's entry to the write path, which sends a
//! request's mutations to the group commit or applies them one by one.

use diesel_async::pooled_connection::deadpool::Pool;
use stratasync_core::FilterContext;

#[cfg(feature = "postgres")]
use super::group;
use super::{Outcome, apply_alone};
use crate::MutationError;
use crate::mutate::Mutation;
use crate::registry::Registry;

/// Where mutations are written: the pool of the store's backend and, on
/// PostgreSQL, the group commit in front of it.
#[derive(Clone)]
pub(crate) enum Writer {
    /// PostgreSQL, with or without group commit.
    #[cfg(feature = "postgres")]
    Postgres {
        /// The pool.
        pool: Pool<crate::PgConn>,
        /// The group commit, unless turned off.
        group: Option<group::GroupCommit>,
    },
    /// SQLite: one writer at a time, in process.
    #[cfg(feature = "sqlite")]
    Sqlite {
        /// The pool.
        pool: Pool<crate::SqliteConn>,
        /// Held by the one writing transaction.
        writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    },
}

impl Writer {
    /// Applies registered, supported mutations of one request in order, each
    /// with its own outcome.
    pub(crate) async fn apply_all(
        &self,
        registry: &Registry,
        ctx: &FilterContext,
        mutations: Vec<Mutation>,
    ) -> Vec<Outcome> {
        #[cfg(feature = "postgres")]
        if let Writer::Postgres {
            group: Some(group), ..
        } = self
        {
            return group.submit(ctx, mutations).await;
        }
        let mut outcomes = Vec::with_capacity(mutations.len());
        for mutation in &mutations {
            let Some(model) = registry.get(&mutation.model) else {
                outcomes.push(Err(MutationError::rejected("Unknown model")));
                continue;
            };
            outcomes.push(match self {
                #[cfg(feature = "postgres")]
                Writer::Postgres { pool, .. } => {
                    apply_alone::<crate::PgConn>(pool, model, ctx, mutation).await
                }
                #[cfg(feature = "sqlite")]
                Writer::Sqlite { pool, writer } => {
                    let _one_writer = writer.lock().await;
                    apply_alone::<crate::SqliteConn>(pool, model, ctx, mutation).await
                }
            });
        }
        outcomes
    }

    /// The same writer without group commit.
    pub(crate) fn without_group_commit(self) -> Writer {
        match self {
            #[cfg(feature = "postgres")]
            Writer::Postgres { pool, .. } => Writer::Postgres { pool, group: None },
            #[cfg(feature = "sqlite")]
            other @ Writer::Sqlite { .. } => other,
        }
    }
}
