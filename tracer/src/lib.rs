//! The tracer agent: loads the kernel programs, turns the bytes they see into
//! HTTP spans, and exports them over OTLP. Stages (see DESIGN.md):
//! probes → events → conn → protocols → spans → export.
pub mod agent;
pub mod cli;
pub mod conn;
pub mod context;
pub mod events;
pub mod export;
pub mod golang;
pub mod metrics;
pub mod probes;
pub mod process;
pub mod protocols;
pub mod sampling;
pub mod spans;
pub mod stats;
