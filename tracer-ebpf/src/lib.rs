#![no_std]
// This crate's programs live in the `tracer` binary target; the library exists
// so that `tracer/build.rs` can depend on the package and be rebuilt with it.
