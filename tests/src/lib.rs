//! Harness for the integration tests: an OTLP receiver (traces and
//! metrics), a Zipkin receiver, a Prometheus, the agent under test, the
//! programs it traces, and the rules for skipping.
pub mod agent;
pub mod apps;
pub mod chain;
pub mod fanout;
pub mod flow;
pub mod http_serve;
pub mod injection;
pub mod otlp_metrics;
pub mod otlp_receiver;
pub mod process;
pub mod prometheus;
pub mod skip;
pub mod spans;
pub mod tls;
pub mod trace_tree;
pub mod zipkin_receiver;

pub use otlp_metrics::{MetricKind, PointValue, ReceivedPoint, Temporality};
pub use otlp_receiver::{AttrValue, Protocol, ReceivedSpan, Receiver};
