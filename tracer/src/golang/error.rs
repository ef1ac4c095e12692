//! What can go wrong while analysing a Go executable.
use std::{io, path::PathBuf};

use super::buildinfo::BuildInfoError;

#[derive(Debug, thiserror::Error)]
pub enum GoError {
    #[error(transparent)]
    BuildInfo(#[from] BuildInfoError),
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {reason}")]
    Malformed { path: PathBuf, reason: String },
    /// A well-formed binary this code does not handle (another machine, a
    /// Go release before 1.18's symbol table).
    #[error("{path}: unsupported: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    /// The binary has no DWARF and its Go release is not in the offsets
    /// table.
    #[error("no struct offsets for {version}: no DWARF, and the table knows only Go {known}")]
    UnknownRelease { version: String, known: String },
    /// `go-offsets`: a probe binary lacks a field the table must have.
    #[error("{path}: DWARF lacks {missing}")]
    MissingFields { path: PathBuf, missing: String },
}
