//! From the kernel's ring buffer to decoded events.
pub mod decode;
pub mod reader;

pub use decode::{DataHeader, Event};
