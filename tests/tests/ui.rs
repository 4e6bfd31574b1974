//! Compile tests of `#[derive(SyncModel)]`: every supported attribute form
//! compiles (`tests/ui/pass`), every mistake is one clear error
//! (`tests/ui/fail`, one rule per file, with its `.stderr` snapshot).
//!
//! Regenerate snapshots with `TRYBUILD=overwrite cargo test -p stratasync-tests --test ui`
//! and read the diff.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("ui/pass/*.rs");
    cases.compile_fail("ui/fail/*.rs");
}
