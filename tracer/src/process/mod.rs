//! Processes the agent traces: who they are (for the span resource) and
//! whether the user selected them.
pub mod info;
pub mod maps;
pub mod selection;

pub use info::{ProcessInfo, ProcessTable};
