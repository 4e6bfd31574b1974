//! A unit struct has no fields to sync.
use stratasync::SyncModel;

#[derive(SyncModel)]
#[sync(global)]
pub struct Task;

fn main() {}
