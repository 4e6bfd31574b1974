//! `--profile`: where the server's time goes during a run, by `perf`.
//!
//! During a repeat of a measured run (perf is not attached to the run whose
//! figures are reported), `perf record -F 997 -g -p <server pid> -- sleep
//! <s>` samples the server process; afterwards `perf report --no-children --sort
//! sym --stdio` ranks its symbols by their own samples, and the report keeps
//! the first [`TOP`] lines as text. Without `perf`, or when the kernel does
//! not let it sample (`perf_event_paranoid`), the profile is skipped and the
//! report says why.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Symbols kept from the report.
pub const TOP: usize = 10;
/// Samples per second (a prime, so as not to beat with timers).
const FREQUENCY: &str = "997";

/// A profile of one run, or why there is none.
#[derive(Debug, Clone)]
pub struct Profile {
    /// What was sampled (`mutate, 16 clients × 1 tx/request`).
    pub during: String,
    /// The `perf record` command, as run.
    pub command: String,
    /// The report's first [`TOP`] lines, or why the profile was skipped.
    pub top: Result<Vec<String>, String>,
}

/// A `perf record` in progress.
#[derive(Debug)]
pub struct Recording {
    during: String,
    command: String,
    data: PathBuf,
    started: Result<Child, String>,
}

/// Starts sampling `pid` for `time`; `during` names the run.
pub fn record(pid: u32, time: Duration, during: &str) -> Recording {
    let data = std::env::temp_dir().join(format!(
        "stratasync-bench-{}-{pid}.perf.data",
        std::process::id()
    ));
    let secs = format!("{:.1}", time.as_secs_f64().max(0.1));
    let command = format!("perf record -F {FREQUENCY} -g -p <server pid> -- sleep {secs}");
    let started = Command::new("perf")
        .args([
            "record",
            "-F",
            FREQUENCY,
            "-g",
            "-p",
            &pid.to_string(),
            "-o",
        ])
        .arg(&data)
        .args(["--", "sleep", &secs])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "`perf` is not installed".to_owned(),
            _ => format!("`perf` could not be started: {e}"),
        });
    Recording {
        during: during.to_owned(),
        command,
        data,
        started,
    }
}

impl Recording {
    /// Waits for the recording to end and reads its report.
    pub async fn finish(self) -> Profile {
        let top = match self.started {
            Ok(child) => report(child, &self.data).await,
            Err(reason) => Err(reason),
        };
        let _ = std::fs::remove_file(&self.data);
        if let Err(reason) = &top {
            eprintln!("[bench] profile of {} skipped: {reason}", self.during);
        }
        Profile {
            during: self.during,
            command: self.command,
            top,
        }
    }
}

async fn report(child: Child, data: &std::path::Path) -> Result<Vec<String>, String> {
    let recorded = child
        .wait_with_output()
        .await
        .map_err(|e| format!("`perf record` failed: {e}"))?;
    // A sampled process that ends before `sleep` does (a bootstrap's node
    // stops after its read) ends the recording with a failure status; what
    // was recorded is still read, and only no data at all is a refusal.
    let refused = || {
        format!(
            "`perf record` was refused: {}",
            first_line(&recorded.stderr)
        )
    };
    if !recorded.status.success() && !data.exists() {
        return Err(refused());
    }
    let reported = Command::new("perf")
        .args(["report", "--no-children", "--sort", "sym", "--stdio", "-i"])
        .arg(data)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("`perf report` could not be started: {e}"))?;
    if !reported.status.success() {
        if !recorded.status.success() {
            return Err(refused());
        }
        return Err(format!(
            "`perf report` failed: {}",
            first_line(&reported.stderr)
        ));
    }
    let top = top_lines(&String::from_utf8_lossy(&reported.stdout));
    if top.is_empty() {
        return Err("`perf report` listed no samples".to_owned());
    }
    Ok(top)
}

fn first_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("no message")
        .to_owned()
}

/// The first [`TOP`] symbol lines of `perf report --stdio`: those that start
/// with their share (`  6.37%  [k] symbol`), not the comments or the call
/// chains under them.
fn top_lines(report: &str) -> Vec<String> {
    report
        .lines()
        .filter(|line| {
            line.split_whitespace().next().is_some_and(|share| {
                share.ends_with('%') && share[..share.len() - 1].parse::<f64>().is_ok()
            })
        })
        .take(TOP)
        .map(|line| line.trim_end().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_symbol_lines_are_kept_and_the_call_chains_are_not() {
        let report = "\
# Samples: 4K of event 'cpu-clock'
#
# Overhead  Symbol
# ........  ......
#
     6.37%  [k] _raw_spin_unlock_irqrestore
            |
            ---_raw_spin_unlock_irqrestore
               |--50.00%--try_to_wake_up
     3.45%  [.] __memset_avx2_unaligned_erms

";
        assert_eq!(
            top_lines(report),
            [
                "     6.37%  [k] _raw_spin_unlock_irqrestore",
                "     3.45%  [.] __memset_avx2_unaligned_erms",
            ]
        );
    }

    #[test]
    fn only_the_top_lines_are_kept() {
        let report: String = (0..20)
            .map(|i| format!("  {}.00%  [.] f{i}\n", 20 - i))
            .collect();
        assert_eq!(top_lines(&report).len(), TOP);
    }
}
