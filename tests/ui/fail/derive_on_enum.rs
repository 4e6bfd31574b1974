//! The derive works on structs only.
use stratasync::SyncModel;
use uuid::Uuid;

#[derive(SyncModel)]
#[sync(global)]
pub enum Task {
    Open { id: Uuid },
    Done { id: Uuid },
}

fn main() {}
