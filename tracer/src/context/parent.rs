//! Who a span's parent is, from what the kernel decided when the request
//! passed (its thread, its connection, a header it read) and the headers the
//! agent parsed. Pure: the same inputs give the same ids.
use tracer_common::{TraceCtx, ctx_source};

use super::propagation::{self, Extracted, InvalidReason};
use crate::spans::ids::IdGenerator;

/// How the parent was found; exported as `tracer.parent.source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParentSource {
    /// No parent: a root span.
    None,
    /// A context header the caller sent.
    Header,
    /// A `traceparent` this agent's kernel programs wrote into the request
    /// on this host.
    Injected,
    /// The server request the same thread was serving.
    Thread,
    /// The client span at the other end of the connection, on this host.
    Connection,
    /// The server request of the goroutine that made the call, or of the
    /// goroutine that started it (Go).
    Goroutine,
    /// The server request whose context header a proxy forwards in this
    /// client request (same process).
    Forwarded,
}

impl ParentSource {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Header => "header",
            Self::Injected => "injected",
            Self::Thread => "thread",
            Self::Connection => "connection",
            Self::Goroutine => "goroutine",
            Self::Forwarded => "forwarded",
        }
    }
}

/// The ids and parent of one span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanIdentity {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    /// The parent lives in another process.
    pub parent_is_remote: bool,
    pub sampled: bool,
    pub trace_state: Option<String>,
    pub source: ParentSource,
    /// The kernel wrote `traceparent` with these ids into this (client)
    /// request.
    pub injected: bool,
}

/// What `choose` found besides the identity.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Notes {
    /// A context header was present but unusable (counted by the caller).
    pub invalid_header: Option<InvalidReason>,
}

/// Decide a span's identity.
///
/// - The kernel's choice first: it saw the request as it passed, knows the
///   thread and the connection, read the same `traceparent` the agent sees,
///   and already propagated its ids downstream. A header the kernel did not
///   follow (B3, or beyond the bytes it scans) wins only when the kernel put
///   the span in another trace.
/// - Else a valid context header (W3C or B3).
/// - Else a new root.
///
/// `was_injected(span_id)` says whether this agent wrote a header naming
/// that span, to tell `injected` from `header` and `connection` parents.
pub fn choose(
    kernel: Option<&TraceCtx>,
    headers: &[(&str, String)],
    ids: &mut IdGenerator,
    was_injected: impl Fn(&[u8; 8]) -> bool,
) -> (SpanIdentity, Notes) {
    let mut notes = Notes::default();
    let kernel = kernel.filter(|k| k.valid != 0);
    let caller = match propagation::extract(headers) {
        Extracted::Valid(caller) => Some(caller),
        Extracted::Invalid(reason) => {
            notes.invalid_header = Some(reason);
            None
        }
        Extracted::None => None,
    };
    if let Some(k) = kernel
        && caller.as_ref().is_none_or(|c| c.trace_id == k.trace_id)
    {
        let parent = (k.parent_span_id != [0; 8]).then_some(k.parent_span_id);
        let source = match (parent, k.source) {
            (None, _) => ParentSource::None,
            (Some(p), _)
                if !matches!(
                    k.source,
                    ctx_source::THREAD | ctx_source::GOROUTINE | ctx_source::FORWARDED
                ) && was_injected(&p) =>
            {
                ParentSource::Injected
            }
            (Some(_), ctx_source::THREAD) => ParentSource::Thread,
            (Some(_), ctx_source::GOROUTINE) => ParentSource::Goroutine,
            (Some(_), ctx_source::FORWARDED) => ParentSource::Forwarded,
            (Some(_), ctx_source::CONNECTION) => ParentSource::Connection,
            (Some(_), _) => ParentSource::Header,
        };
        return (
            SpanIdentity {
                trace_id: k.trace_id,
                span_id: k.span_id,
                parent_span_id: parent,
                parent_is_remote: !matches!(
                    source,
                    ParentSource::Thread
                        | ParentSource::Goroutine
                        | ParentSource::Forwarded
                        | ParentSource::None
                ),
                sampled: k.flags & 1 == 1,
                trace_state: caller.and_then(|c| c.trace_state),
                source,
                injected: k.injected != 0,
            },
            notes,
        );
    }
    if let Some(caller) = caller {
        let source = if was_injected(&caller.span_id) {
            ParentSource::Injected
        } else {
            ParentSource::Header
        };
        return (
            SpanIdentity {
                trace_id: caller.trace_id,
                span_id: ids.span_id(),
                parent_span_id: Some(caller.span_id),
                parent_is_remote: true,
                sampled: caller.sampled,
                trace_state: caller.trace_state,
                source,
                injected: false,
            },
            notes,
        );
    }
    (
        SpanIdentity {
            trace_id: ids.trace_id(),
            span_id: ids.span_id(),
            parent_span_id: None,
            parent_is_remote: false,
            sampled: true,
            trace_state: None,
            source: ParentSource::None,
            injected: false,
        },
        notes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(source: u8, parent: [u8; 8]) -> TraceCtx {
        TraceCtx {
            trace_id: [7; 16],
            span_id: [2; 8],
            parent_span_id: parent,
            flags: 1,
            source,
            valid: 1,
            ..TraceCtx::default()
        }
    }

    fn headers(tp: &str) -> Vec<(&'static str, String)> {
        vec![("traceparent", tp.into())]
    }

    const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn header_wins_and_keeps_kernel_span_id_for_the_same_trace() {
        let mut ids = IdGenerator::new();
        let mut k = kernel(ctx_source::HEADER, [0xb7; 8]);
        k.trace_id = [
            0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80,
            0x31, 0x9c,
        ];
        let (id, notes) = choose(Some(&k), &headers(TP), &mut ids, |_| false);
        assert_eq!(id.trace_id, k.trace_id);
        assert_eq!(id.span_id, k.span_id);
        assert_eq!(id.parent_span_id.unwrap()[0], 0xb7);
        assert_eq!(id.source, ParentSource::Header);
        assert!(id.parent_is_remote && id.sampled);
        assert_eq!(notes, Notes::default());
    }

    #[test]
    fn injected_parent_is_named_as_such() {
        let mut ids = IdGenerator::new();
        let (id, _) = choose(None, &headers(TP), &mut ids, |s| s[0] == 0xb7);
        assert_eq!(id.source, ParentSource::Injected);
        let k = kernel(ctx_source::CONNECTION, [0xb7; 8]);
        let (id, _) = choose(Some(&k), &[], &mut ids, |s| s[0] == 0xb7);
        assert_eq!(id.source, ParentSource::Injected);
    }

    #[test]
    fn header_in_another_trace_than_the_kernel_wins() {
        // e.g. B3, which the kernel does not read.
        let mut ids = IdGenerator::new();
        let k = kernel(ctx_source::NONE, [0; 8]);
        let (id, _) = choose(Some(&k), &headers(TP), &mut ids, |_| false);
        assert_eq!(id.source, ParentSource::Header);
        assert_eq!(id.trace_id[0], 0x0a);
        assert_eq!(id.parent_span_id.unwrap()[0], 0xb7);
    }

    #[test]
    fn forwarded_header_loses_to_the_kernel_in_the_same_trace() {
        let mut ids = IdGenerator::new();
        let mut k = kernel(ctx_source::CONNECTION, [9; 8]);
        k.trace_id = [
            0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80,
            0x31, 0x9c,
        ];
        let (id, _) = choose(Some(&k), &headers(TP), &mut ids, |_| false);
        assert_eq!(id.source, ParentSource::Connection);
        assert_eq!(id.parent_span_id, Some([9; 8]));
    }

    #[test]
    fn kernel_thread_connection_and_root() {
        let mut ids = IdGenerator::new();
        let (id, _) = choose(
            Some(&kernel(ctx_source::THREAD, [9; 8])),
            &[],
            &mut ids,
            |_| false,
        );
        assert_eq!(
            (id.source, id.parent_is_remote),
            (ParentSource::Thread, false)
        );
        assert_eq!(id.span_id, [2; 8]);
        let (id, _) = choose(
            Some(&kernel(ctx_source::CONNECTION, [9; 8])),
            &[],
            &mut ids,
            |_| false,
        );
        assert_eq!(
            (id.source, id.parent_is_remote),
            (ParentSource::Connection, true)
        );
        let (id, _) = choose(
            Some(&kernel(ctx_source::NONE, [0; 8])),
            &[],
            &mut ids,
            |_| false,
        );
        assert_eq!((id.source, id.parent_span_id), (ParentSource::None, None));
        assert_eq!(
            id.trace_id, [7; 16],
            "the kernel's root ids were propagated"
        );
    }

    #[test]
    fn invalid_header_is_reported_and_ignored() {
        let mut ids = IdGenerator::new();
        let (id, notes) = choose(
            Some(&kernel(ctx_source::NONE, [0; 8])),
            &headers("00-zz"),
            &mut ids,
            |_| false,
        );
        assert!(notes.invalid_header.is_some());
        assert_eq!(id.source, ParentSource::None);
    }

    #[test]
    fn no_kernel_context_makes_a_root() {
        let mut ids = IdGenerator::new();
        let (id, _) = choose(None, &[], &mut ids, |_| false);
        assert_eq!(id.parent_span_id, None);
        assert_ne!(id.trace_id, [0; 16]);
    }
}
