//! Per-connection state and the stage that turns connection events into
//! spans.
pub mod pipeline;
pub mod recent;
pub mod table;
