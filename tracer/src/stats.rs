//! Counters of everything the agent saw, made and dropped. Every place that
//! can drop data has a counter here, and the agent reports them all.
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident),* $(,)?) => {
        /// Counters shared by all stages; cheap relaxed atomics.
        #[derive(Debug, Default)]
        pub struct Stats {
            $($(#[doc = $doc])* pub $name: AtomicU64,)*
        }

        impl Stats {
            /// (name, value) of every counter, in declaration order.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters! {
    /// Ring-buffer records read.
    events_read,
    /// Bytes of ring-buffer records read (headers and padding included).
    ringbuf_bytes_read,
    /// Size of the kernel ring buffer (a gauge: set once).
    ringbuf_size_bytes,
    /// The most the ring buffer ever held when it was drained (a gauge:
    /// compare with ringbuf_size_bytes; when they meet, events drop).
    ringbuf_backlog_max_bytes,
    /// Data events (syscalls that moved bytes on a traced socket).
    data_events,
    /// Records that could not be decoded (short, unknown kind).
    events_malformed,
    /// Dropped in the kernel: ring buffer full (read from the COUNTERS map).
    drop_ringbuf_full,
    /// Dropped in the kernel: ARGS map full.
    drop_args_full,
    /// Processes not selected in the kernel (children of selected ones,
    /// execs of selected executables): TRACED_PIDS map full.
    drop_pids_full,
    /// Failed kernel/user memory reads in the kernel programs.
    kernel_read_failed,
    /// Dropped: the channel from the reader to the connection stage was full.
    drop_conn_queue_full,
    /// HTTP/1 exchanges completed (request and response seen).
    http_exchanges,
    /// HTTP/1 parse errors (the connection's stream is resynchronised).
    drop_http_parse_error,
    /// Requests whose head did not fit into the captured prefix.
    drop_http_head_truncated,
    /// Requests dropped because too many were pending on one connection.
    drop_http_pipeline_overflow,
    /// HTTP/2 streams completed (each becomes a gRPC or HTTP span).
    http2_streams,
    /// HTTP/2 connections given up: a frame header fell into uncaptured
    /// bytes (raise --capture-bytes).
    drop_http2_desync,
    /// HTTP/2 connections given up: a header block was not captured in
    /// full, too large or undecodable, so header compression state is lost.
    drop_http2_header_block,
    /// HTTP/2 connections given up: bytes no conforming peer sends.
    drop_http2_malformed,
    /// HTTP/2 connections ignored: already running when tracing began.
    drop_http2_mid_connection,
    /// HTTP/2 streams not followed: too many open on one connection.
    drop_http2_stream_overflow,
    /// HTTP/2 streams lost because their connection was given up.
    drop_http2_stream_abandoned,
    /// HTTP/2 server streams whose parent is the client stream at the other
    /// end of the connection, traced on this host.
    http2_stitched,
    /// Of those, found only when the server stream ended: the client's
    /// write reached the ring buffer after the server's read.
    http2_stitched_late,
    /// HTTP/2 client streams forgotten before their time (too many
    /// remembered at once): a server end on this host may miss its parent.
    http2_stitch_evicted,
    /// Connections dropped because the agent tracked too many.
    drop_conn_table_full,
    /// Spans built.
    spans_created,
    /// Spans not exported because their trace was not sampled.
    spans_unsampled,
    /// Requests whose trace-context header was present but invalid (a new
    /// trace was started instead).
    context_invalid_header,
    /// traceparent headers the kernel wrote into outgoing requests.
    context_injected,
    /// Outgoing requests that could not be injected (request line split).
    context_inject_failed,
    /// Outgoing requests left alone: they carried their own traceparent.
    context_own_header,
    /// Dropped: the channel to the exporter was full.
    drop_export_queue_full,
    /// Spans OTLP accepted.
    spans_exported,
    /// Dropped: spans in batches OTLP did not accept after retries, or still
    /// unsent to it at shutdown.
    drop_export_failed,
    /// Dropped: the OTLP sender's pending buffer was full (backend slow or
    /// down).
    drop_export_buffer_full,
    /// OTLP export attempts that failed (each may be retried).
    export_errors,
    /// Spans Zipkin accepted.
    zipkin_spans_exported,
    /// Dropped: spans in batches Zipkin did not accept after retries, or
    /// still unsent to it at shutdown.
    drop_zipkin_export_failed,
    /// Dropped: the Zipkin sender's pending buffer was full (Zipkin slow or
    /// down).
    drop_zipkin_buffer_full,
    /// Zipkin export attempts that failed (each may be retried).
    zipkin_export_errors,
    /// Go processes whose requests are followed by goroutine.
    go_processes,
    /// Syscalls of Go processes whose goroutine could not be read (context
    /// by thread instead; from the kernel).
    go_no_goroutine,
    /// Syscalls of Go processes whose goroutine was read from the thread's
    /// TLS because R14 did not hold it (from the kernel).
    go_goroutine_from_tls,
    /// Go client calls whose connection could not be read at the uprobe
    /// (their parent comes from the writing goroutine; from the kernel).
    go_handoff_failed,
    /// HTTP/2 requests beyond the first `http2::MAX_HEADS` of one write:
    /// no kernel context, no `traceparent` (from the kernel).
    http2_heads_untraced,
    /// HTTP/2 client connections no longer injected: the kernel could not
    /// tell where a write's frames start (a partial write, a frame header
    /// cut by the end of a write). Their spans are still linked by
    /// connection on this host.
    http2_inject_sync_lost,
    /// gRPC calls of Go processes whose stream or connection could not be
    /// read at the uprobe (their parent comes from the writing goroutine;
    /// from the kernel).
    go_grpc_stream_failed,
    /// gRPC calls of Go processes whose HEADERS frame went out before the
    /// call's uprobe ran (a writer goroutine on another CPU): their client
    /// spans start new traces (from the kernel).
    go_grpc_stream_late,
    /// Go gRPC calls whose HEADERS went out with no caller recorded (late
    /// ones included, and any whose uprobe did not run): new traces.
    go_grpc_stream_no_caller,
    /// Go processes given the server handler probe (they make outgoing
    /// calls).
    go_server_probes_attached,
    /// Hits of the Go server handler probes: one per incoming HTTP/2 or gRPC
    /// request of a Go middle tier (from the kernel).
    go_server_probe_hits,
    /// Of those, requests whose stream or connection could not be read:
    /// their handler's calls start new traces (from the kernel).
    go_server_stream_failed,
    /// Of those, requests whose `traceparent` or `b3` the probe read from
    /// the request's headers (from the kernel).
    go_server_stream_header,
    /// Server stream contexts the probes chose that reached the agent.
    go_server_streams,
    /// Of those, streams the agent had given another parent (a header the
    /// probe does not read, or stitching by connection): the probe's ids
    /// win, as the handler's calls carry them.
    go_server_context_conflicts,
    /// HTTP/2 requests of Go middle tiers whose `http.route` is their
    /// ServeMux pattern, read from the process when the stream ended.
    go_routes_read,
    /// Of those whose pattern was to be read, the ones it could not be (no
    /// pattern: not a ServeMux; the request gone or reused): the route is
    /// templated from the path.
    go_routes_unread,
    /// Files given the TLS probes: a libssl, or an executable that exports
    /// OpenSSL's API.
    tls_files_probed,
    /// Plaintext chunks the TLS probes gave (from the kernel).
    tls_plaintext_events,
    /// Hits of the TLS uprobes in traced processes, each a trap the
    /// process paid (from the kernel).
    tls_probe_hits,
    /// Plaintext read from a TLS library that could not be tied to its
    /// connection: dropped, never guessed (from the kernel).
    drop_tls_untied,
    /// TLS write calls whose plaintext no socket write carried before the
    /// caller's next write call: lost (from the kernel).
    drop_tls_write_unsent,
    /// Syscalls on TLS sockets whose ciphertext was not sent to the agent
    /// (from the kernel): their plaintext comes from the probes.
    tls_ciphertext_skipped,
    /// TLS connections that ended with none of their plaintext seen (a
    /// ClientHello went by, then nothing from the TLS library): their
    /// process's library is not probed, or they carried no data. Not a
    /// drop: nothing was captured to lose.
    tls_connections_unseen,
    /// HTTP/2 client requests that neither the kernel nor the app gave a
    /// context (no `traceparent` either): their spans start new traces.
    http2_client_no_context,
    /// Kernel contexts of HTTP/2 requests whose connection the agent did
    /// not have (their spans start new traces).
    drop_http2_heads_orphaned,
    /// Kernel contexts of HTTP/2 requests dropped unclaimed: a connection
    /// held more of them than a few writes' worth, waiting for requests
    /// that were never read (their spans start new traces).
    drop_http2_contexts_unclaimed,
    /// Metric series created (one per process, instrument and attribute set).
    metrics_series_created,
    /// Observations folded into a process's overflow series: it had
    /// reached the cardinality limit (`--metrics-cardinality-limit`).
    metrics_series_folded,
    /// Service-graph names beyond the limit, reported as `other`.
    metrics_graph_names_folded,
    /// Server exchanges whose client was never seen (its parent came from
    /// another host, or its client's exchange was lost): no graph edge.
    metrics_graph_unpaired,
    /// Dropped from the service graph: too many exchanges waiting for
    /// their other side.
    drop_metrics_graph_pending_full,
    /// Dropped from the service graph: too many edges.
    drop_metrics_graph_edges_full,
    /// Metric data points the OTLP backend accepted.
    metric_points_exported,
    /// OTLP metrics exports that failed.
    metrics_export_errors,
    /// Dropped: delta data points of failed OTLP metrics exports.
    drop_metric_points_export_failed,
}

/// Counters that are levels rather than totals (exported as gauges).
pub const GAUGES: &[&str] = &["ringbuf_size_bytes", "ringbuf_backlog_max_bytes"];

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// One line for the log: `name=value` for every non-zero counter.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .snapshot()
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if parts.is_empty() {
            "no events yet".to_owned()
        } else {
            parts.join(" ")
        }
    }
}
