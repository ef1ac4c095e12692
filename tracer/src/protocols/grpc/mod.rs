//! gRPC over HTTP/2 (pure): which streams are gRPC calls, which method they
//! call, and what their status is.
mod call;
mod status;

pub use call::{MethodName, is_grpc, parse_path};
pub use status::{Code, decode_message, is_server_error, status_of};
