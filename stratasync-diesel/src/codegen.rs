//! The `codegen` command: writes the TypeScript client schema of a
//! [`Registry`] to a file, or checks that the committed file is current.
//!
//! An application calls [`run`] from its binary with the arguments after its
//! `codegen` word:
//!
//! ```text
//! my-server codegen --typescript web/src/schema.ts          # write it
//! my-server codegen --typescript web/src/schema.ts --check  # fail when stale
//! ```
//!
//! The workflow: change a model, run the command, commit the file; CI runs
//! the `--check` form so a model change without a regenerated client fails.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::Registry;

/// Whether [`typescript_file`] writes the file or only compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Write the file (left untouched when already current).
    Write,
    /// Fail with [`CodegenError::Stale`] when the file differs.
    Check,
}

/// What [`typescript_file`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The file was written with new content.
    Written,
    /// The file already held the generated module.
    UpToDate,
}

/// Why the command failed.
#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    /// The arguments do not form a command; the message says the right form.
    #[error("{0}\nusage: codegen --typescript <file> [--check]")]
    Usage(String),
    /// The file could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// `--check` found a file that differs from the models (or no file).
    #[error(
        "{} is stale: it does not match the server's models (schema hash {expected_hash})\n\
         help: run the same command without --check and commit the file",
        path.display()
    )]
    Stale {
        /// The file.
        path: PathBuf,
        /// The hash the current models give.
        expected_hash: String,
    },
}

/// Writes the TypeScript module of `registry` to `path`, or with
/// [`Mode::Check`] compares the file with it.
pub fn typescript_file(
    registry: &Registry,
    path: &Path,
    mode: Mode,
) -> Result<Outcome, CodegenError> {
    let generated = registry.typescript();
    let current = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(CodegenError::Io {
                action: "read",
                path: path.to_owned(),
                source,
            });
        }
    };
    if current.as_deref() == Some(generated.as_str()) {
        return Ok(Outcome::UpToDate);
    }
    match mode {
        Mode::Check => Err(CodegenError::Stale {
            path: path.to_owned(),
            expected_hash: registry.schema_hash(),
        }),
        Mode::Write => {
            std::fs::write(path, generated).map_err(|source| CodegenError::Io {
                action: "write",
                path: path.to_owned(),
                source,
            })?;
            Ok(Outcome::Written)
        }
    }
}

/// What [`run`] did, for the application to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The file.
    pub path: PathBuf,
    /// Whether it was written or already current.
    pub outcome: Outcome,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.outcome {
            Outcome::Written => write!(f, "wrote {}", self.path.display()),
            Outcome::UpToDate => write!(f, "{} is up to date", self.path.display()),
        }
    }
}

/// Runs `--typescript <file> [--check]` (the arguments after `codegen`).
pub fn run(
    registry: &Registry,
    args: impl IntoIterator<Item = String>,
) -> Result<Report, CodegenError> {
    let mut path = None;
    let mut mode = Mode::Write;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--check" => mode = Mode::Check,
            "--typescript" => match args.next() {
                Some(file) if path.is_none() => path = Some(PathBuf::from(file)),
                Some(_) => return Err(CodegenError::Usage("--typescript is given twice".into())),
                None => return Err(CodegenError::Usage("--typescript needs a file".into())),
            },
            other => {
                return Err(CodegenError::Usage(format!(
                    "unknown argument `{other}` (expected --typescript or --check)"
                )));
            }
        }
    }
    let path = path.ok_or_else(|| CodegenError::Usage("--typescript <file> is required".into()))?;
    let outcome = typescript_file(registry, &path, mode)?;
    Ok(Report { path, outcome })
}
