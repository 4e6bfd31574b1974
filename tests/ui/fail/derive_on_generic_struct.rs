//! A synced model is one concrete row type.
use stratasync::SyncModel;
use uuid::Uuid;

#[derive(SyncModel)]
#[sync(global)]
pub struct Task<T> {
    pub id: Uuid,
    pub payload: T,
}

fn main() {}
