//! Per-connection state and the stage that turns connection events into
//! spans.
pub mod pipeline;
pub mod protocol;
pub mod recent;
pub mod stitch;
pub mod table;
pub mod tls_unseen;

#[cfg(test)]
mod http2_golden_tests;
#[cfg(test)]
mod http2_stitch_tests;
