//! The derive needs named fields.
use stratasync::SyncModel;
use uuid::Uuid;

#[derive(SyncModel)]
#[sync(global)]
pub struct Task(pub Uuid, pub String);

fn main() {}
