//! Facts about Go executables that the kernel side cannot see: which Go
//! toolchain built a binary (for the `process.runtime.*` resource
//! attributes).
pub mod buildinfo;
