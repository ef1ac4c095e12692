//! Which features the agent has, given which of its optional kernel
//! programs loaded. Capture (the syscall and sched tracepoints, the ring
//! buffer) is not optional; everything here is: a program that the kernel
//! refuses turns off only the features that need it.
use tracer_common::{go_probes, tail, tls_probes};

use super::programs::ProgramLoad;

/// The sk_msg program that writes `traceparent`.
pub const SK_MSG: &str = "inject_traceparent";
/// The sock_ops program that puts client sockets into its SockHash.
pub const SOCK_OPS: &str = "track_client_sockets";
/// The sk_skb verdict program that passes on what those sockets receive.
pub const SK_SKB: &str = "pass_ingress";

const CLASSIFY: &str = tail::PROGRAMS[tail::CLASSIFY as usize];
const SERVER_CONTEXT: &str = tail::PROGRAMS[tail::SERVER_CONTEXT as usize];
const SERVER_DECIDE: &str = tail::PROGRAMS[tail::SERVER_DECIDE as usize];
const CLIENT_CONTEXT: &str = tail::PROGRAMS[tail::CLIENT_CONTEXT as usize];
const CLIENT_DECIDE: &str = tail::PROGRAMS[tail::CLIENT_DECIDE as usize];
const CLIENT_H2: &str = tail::PROGRAMS[tail::CLIENT_H2 as usize];

/// The TLS probes and their tail programs.
pub const TLS_PROGRAMS: [&str; 10] = [
    tls_probes::WRITE[0].0,
    tls_probes::READ[0].0,
    tls_probes::READ[1].0,
    tls_probes::READ_RET[0].0,
    tls_probes::GO_WRITE.0,
    tls_probes::GO_READ.0,
    tls_probes::GO_READ_RET.0,
    tls_probes::TAILS[0].1,
    tls_probes::TAILS[1].1,
    tls_probes::TAILS[2].1,
];

/// Go TLS reads that cost fewer traps than `GO_READ` and `GO_READ_RET`
/// (the record reader's returns; Read's returns alone), best first. The
/// TLS feature does not need them: without one, Go reads fall back to the
/// next (a warning says what they cost then).
pub const GO_CHEAPER_READS: [&str; 2] = [tls_probes::GO_RECORD.0, tls_probes::GO_READ_EXIT.0];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// HTTP/1 spans from the syscall path: capture itself.
    Http1,
    /// HTTP/2 and gRPC: sockets known by their preface, captured in full.
    Http2,
    /// Trace context decided in the kernel: incoming headers honoured,
    /// parents by thread and goroutine, same-host stitching.
    Context,
    /// `traceparent` written into outgoing HTTP/1 requests.
    Inject,
    /// `traceparent` written into outgoing HTTP/2 HEADERS frames.
    InjectHttp2,
    /// Go net/http client calls nested under their caller's request.
    GoHttpCalls,
    /// Go gRPC client calls nested under their caller's request.
    GoGrpcCalls,
    /// Calls made by the handlers of Go HTTP/2 and gRPC servers nested
    /// under their request (a probe per middle-tier process).
    GoServerHandlers,
    /// HTTPS: plaintext from OpenSSL's API, in place of the ciphertext.
    Tls,
}

/// Every feature, in the order the summary line gives them.
pub const ALL: [Feature; 9] = [
    Feature::Http1,
    Feature::Http2,
    Feature::Context,
    Feature::Inject,
    Feature::InjectHttp2,
    Feature::GoHttpCalls,
    Feature::GoGrpcCalls,
    Feature::GoServerHandlers,
    Feature::Tls,
];

impl Feature {
    /// Its name on the `features:` line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Http1 => "http1",
            Self::Http2 => "http2",
            Self::Context => "context",
            Self::Inject => "inject",
            Self::InjectHttp2 => "inject-http2",
            Self::GoHttpCalls => "go-http-calls",
            Self::GoGrpcCalls => "go-grpc-calls",
            Self::GoServerHandlers => "go-server-handlers",
            Self::Tls => "tls",
        }
    }

    /// What a user loses when it is off, for the warning.
    fn description(self) -> &'static str {
        match self {
            Self::Http1 => "HTTP/1 capture",
            Self::Http2 => "HTTP/2 and gRPC decoding",
            Self::Context => {
                "kernel trace context (incoming traceparent adopted by the kernel, parents by \
                 thread and goroutine, same-host stitching)"
            }
            Self::Inject => "traceparent injection into HTTP/1 requests",
            Self::InjectHttp2 => "traceparent injection into HTTP/2 and gRPC requests",
            Self::GoHttpCalls => "nesting of Go net/http client calls under their request",
            Self::GoGrpcCalls => "nesting of Go gRPC client calls under their request",
            Self::GoServerHandlers => {
                "nesting of calls made by Go HTTP/2 and gRPC server handlers under their request"
            }
            Self::Tls => "HTTPS: plaintext from OpenSSL's SSL_read/SSL_write and Go's crypto/tls",
        }
    }

    /// The optional programs it needs.
    pub fn programs(self) -> &'static [&'static str] {
        match self {
            Self::Http1 => &[],
            Self::Http2 => &[CLASSIFY],
            Self::Context => &[
                CLASSIFY,
                SERVER_CONTEXT,
                SERVER_DECIDE,
                CLIENT_CONTEXT,
                CLIENT_DECIDE,
            ],
            Self::Inject => &[CLIENT_CONTEXT, CLIENT_DECIDE, SK_MSG, SK_SKB, SOCK_OPS],
            Self::InjectHttp2 => &[CLIENT_H2, SK_MSG, SK_SKB, SOCK_OPS],
            Self::GoHttpCalls => &[go_probes::HTTP_ROUND_TRIP.0],
            Self::GoGrpcCalls => &[go_probes::GRPC_NEW_STREAM.0],
            Self::GoServerHandlers => &[
                go_probes::GRPC_SERVER_STREAM.0,
                go_probes::H2_SERVER_STD.0,
                go_probes::H2_SERVER_XNET.0,
            ],
            Self::Tls => &TLS_PROGRAMS,
        }
    }

    /// Asked for by the command line (injection can be turned off).
    fn wanted(self, inject: bool) -> bool {
        !matches!(self, Self::Inject | Self::InjectHttp2) || inject
    }
}

/// The optional programs to load: those of every wanted feature, once
/// each, and the cheaper Go TLS reads.
pub fn optional_programs(inject: bool) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for feature in ALL.iter().filter(|f| f.wanted(inject)) {
        for p in feature.programs() {
            if !out.contains(p) {
                out.push(p);
            }
        }
    }
    out.extend(GO_CHEAPER_READS);
    out
}

/// What is on, and why the rest is off.
#[derive(Clone, Debug)]
pub struct Features {
    /// (feature, None when on / Some(why) when off), for wanted features.
    states: Vec<(Feature, Option<String>)>,
    /// Turned off on the command line.
    not_wanted: Vec<Feature>,
    /// Those of [`GO_CHEAPER_READS`] that loaded, and why each other did
    /// not.
    cheaper_reads: Vec<&'static str>,
    cheaper_reads_refused: Vec<String>,
}

impl Features {
    /// From how the optional programs loaded.
    pub fn new(inject: bool, loads: &[ProgramLoad]) -> Self {
        let mut states = Vec::new();
        let mut not_wanted = Vec::new();
        for feature in ALL {
            if !feature.wanted(inject) {
                not_wanted.push(feature);
                continue;
            }
            let why: Vec<String> = feature
                .programs()
                .iter()
                .filter_map(|p| match loads.iter().find(|l| l.name == *p) {
                    Some(l) if l.loaded() => None,
                    Some(l) => Some(format!("program {p} {}", l.reason())),
                    None => Some(format!("program {p} not loaded")),
                })
                .collect();
            states.push((feature, (!why.is_empty()).then(|| why.join("; "))));
        }
        let mut cheaper_reads = Vec::new();
        let mut cheaper_reads_refused = Vec::new();
        for p in GO_CHEAPER_READS {
            match loads.iter().find(|l| l.name == p) {
                Some(l) if l.loaded() => cheaper_reads.push(p),
                Some(l) => cheaper_reads_refused.push(format!("program {p} {}", l.reason())),
                None => cheaper_reads_refused.push(format!("program {p} not loaded")),
            }
        }
        Self {
            states,
            not_wanted,
            cheaper_reads,
            cheaper_reads_refused,
        }
    }

    /// The cheaper Go TLS read programs that loaded (see
    /// [`GO_CHEAPER_READS`]); none while TLS is off.
    pub fn cheaper_go_reads(&self) -> &[&'static str] {
        if self.is_on(Feature::Tls) {
            &self.cheaper_reads
        } else {
            &[]
        }
    }

    pub fn is_on(&self, feature: Feature) -> bool {
        self.states
            .iter()
            .any(|(f, why)| *f == feature && why.is_none())
    }

    /// Injection could not be attached (no cgroup v2, sk_msg refused).
    pub fn turn_off_injection(&mut self, why: &str) {
        for (f, state) in &mut self.states {
            if matches!(f, Feature::Inject | Feature::InjectHttp2) && state.is_none() {
                *state = Some(why.to_owned());
            }
        }
    }

    /// Every feature the command line asked for is on.
    pub fn all_wanted_on(&self) -> bool {
        self.states.iter().all(|(_, why)| why.is_none())
    }

    /// `http1 http2 context ...`: the features in effect.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .states
            .iter()
            .filter(|(_, why)| why.is_none())
            .map(|(f, _)| f.name().to_owned())
            .collect();
        let off: Vec<&str> = self
            .states
            .iter()
            .filter(|(_, why)| why.is_some())
            .map(|(f, _)| f.name())
            .chain(self.not_wanted.iter().map(|f| f.name()))
            .collect();
        if !off.is_empty() {
            parts.push(format!("(off: {})", off.join(" ")));
        }
        parts.join(" ")
    }

    /// The features that are off although wanted, by name.
    pub fn off_summary(&self) -> String {
        self.states
            .iter()
            .filter_map(|(f, why)| why.as_ref().map(|w| format!("{}: {w}", f.name())))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// One line per wanted feature that is off: what and why.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings: Vec<String> = self
            .states
            .iter()
            .filter_map(|(f, why)| {
                why.as_ref()
                    .map(|w| format!("{} off ({}): {w}", f.description(), f.name()))
            })
            .collect();
        if self.is_on(Feature::Tls) && !self.cheaper_reads_refused.is_empty() {
            warnings.push(format!(
                "tls: Go's TLS reads cost more uprobe traps (up to two a read call, not one a \
                 record): {}",
                self.cheaper_reads_refused.join("; ")
            ));
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn loads(refused: &[&str], inject: bool) -> Vec<ProgramLoad> {
        optional_programs(inject)
            .into_iter()
            .map(|name| ProgramLoad {
                name: name.to_owned(),
                kind: "tracepoint",
                verified_insns: Some(100),
                load_time: Duration::ZERO,
                error: refused
                    .contains(&name)
                    .then(|| "Argument list too long".to_owned()),
            })
            .collect()
    }

    #[test]
    fn everything_loaded_is_everything_on() {
        let f = Features::new(true, &loads(&[], true));
        assert!(f.all_wanted_on());
        assert_eq!(
            f.summary(),
            "http1 http2 context inject inject-http2 go-http-calls go-grpc-calls \
             go-server-handlers tls"
        );
        assert!(f.warnings().is_empty());
    }

    #[test]
    fn a_refused_program_turns_off_only_what_needs_it() {
        let f = Features::new(true, &loads(&["client_context"], true));
        assert!(!f.all_wanted_on());
        assert!(f.is_on(Feature::Http1) && f.is_on(Feature::Http2));
        assert!(f.is_on(Feature::InjectHttp2) && f.is_on(Feature::GoHttpCalls));
        assert!(!f.is_on(Feature::Context) && !f.is_on(Feature::Inject));
        assert_eq!(
            f.summary(),
            "http1 http2 inject-http2 go-http-calls go-grpc-calls go-server-handlers tls (off: \
             context inject)"
        );
        let warnings = f.warnings();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[1].starts_with("traceparent injection into HTTP/1 requests off (inject): program client_context Argument list too long"),
            "{warnings:?}"
        );
    }

    #[test]
    fn no_inject_loads_no_injection_program_and_warns_of_nothing() {
        let programs = optional_programs(false);
        assert!(!programs.contains(&SK_MSG) && !programs.contains(&CLIENT_H2));
        let f = Features::new(false, &loads(&[], false));
        assert!(f.all_wanted_on() && f.warnings().is_empty());
        assert!(
            f.summary().ends_with("(off: inject inject-http2)"),
            "{}",
            f.summary()
        );
    }

    #[test]
    fn a_refused_cheaper_go_read_only_costs_traps() {
        let f = Features::new(true, &loads(&[tls_probes::GO_RECORD.0], true));
        assert!(f.all_wanted_on() && f.is_on(Feature::Tls));
        assert_eq!(f.cheaper_go_reads(), [tls_probes::GO_READ_EXIT.0]);
        let warnings = f.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("tls: Go's TLS reads cost more uprobe traps")
                && warnings[0].contains("go_tls_record_exit Argument list too long"),
            "{warnings:?}"
        );
        // With TLS off, neither is used, and the TLS warning says it all.
        let f = Features::new(true, &loads(&["ssl_write"], true));
        assert!(f.cheaper_go_reads().is_empty());
        assert_eq!(f.warnings().len(), 1, "{:?}", f.warnings());
    }

    #[test]
    fn injection_that_cannot_attach_is_off() {
        let mut f = Features::new(true, &loads(&[], true));
        f.turn_off_injection("no cgroup v2 mount");
        assert!(!f.is_on(Feature::Inject) && !f.is_on(Feature::InjectHttp2));
        assert!(f.is_on(Feature::Context));
        assert!(f.off_summary().contains("inject: no cgroup v2 mount"));
    }
}
