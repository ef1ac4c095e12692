//! What the server handler probes need in a Go executable: where the
//! handler-start functions of its HTTP/2 and gRPC servers are, and the
//! members they read. Read when a Go process is first seen making an
//! outgoing call, never for a leaf server.
//!
//! Struct members come from DWARF; without it, from the committed offsets
//! table for net/http's own HTTP/2 server (the standard library's layout
//! follows the Go release), and not at all for grpc-go and x/net, whose
//! layouts are never guessed: their handlers' calls then start new traces
//! (said once).
use std::path::Path;

use tracer_common::{GoGrpcServer, GoH2Server, GoServerOffsets, go_probes};

use super::{
    GoError, buildinfo, dwarf,
    elf::Elf,
    image_base,
    offsets::{self, ServerFields},
    patterns::RequestLayout,
    relocate, runtime_vars, symbols,
};

/// The key type of grpc-go's incoming metadata in a context (whose value
/// is the metadata.MD map itself).
const MD_INCOMING_KEY: &str = "google.golang.org/grpc/metadata.mdIncomingKey";

/// One handler-start function to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerProbe {
    pub program: &'static str,
    pub function: &'static str,
    /// File offset of its entry.
    pub offset: u64,
}

/// The servers found in one executable.
#[derive(Debug, Clone, Default)]
pub struct GoServers {
    /// Addresses as linked (`GoServers::offsets_at` relocates them).
    pub offsets: GoServerOffsets,
    pub probes: Vec<ServerProbe>,
    /// Servers present that cannot be probed, and why (for the log).
    pub unsupported: Vec<String>,
    /// Where `*http.Request` keeps what its route is read from (Go 1.23+).
    pub request: Option<RequestLayout>,
    pub pie: bool,
    pub image_base: u64,
}

impl GoServers {
    /// The offsets for a process that mapped the executable at `mapped_at`.
    pub fn offsets_at(&self, mapped_at: u64) -> GoServerOffsets {
        let mut o = self.offsets;
        if self.pie {
            o.grpc.md_key_type = relocate(o.grpc.md_key_type, self.image_base, mapped_at);
        }
        o
    }
}

/// The handler-start functions a probe goes on: the program, the function,
/// and (HTTP/2 servers) the prefix of its members in [`ServerFields`].
const KINDS: [(&str, &str, &str); 4] = [
    (
        go_probes::H2_SERVER_STD.0,
        go_probes::H2_SERVER_STD.1,
        "std",
    ),
    // Go 1.27 moved the bundled server into an internal package.
    (
        go_probes::H2_SERVER_STD.0,
        "net/http/internal/http2.(*serverConn).runHandler",
        "int",
    ),
    (
        go_probes::H2_SERVER_XNET.0,
        go_probes::H2_SERVER_XNET.1,
        "xnet",
    ),
    (
        go_probes::GRPC_SERVER_STREAM.0,
        go_probes::GRPC_SERVER_STREAM.1,
        "grpc",
    ),
];

/// The handler-start functions of `path` and what their probes read.
pub fn inspect(path: &Path) -> Result<GoServers, GoError> {
    let malformed = |reason: &str| GoError::Malformed {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let info = buildinfo::read(path)?.ok_or_else(|| malformed("not a Go binary"))?;
    let elf = Elf::open(path)?.ok_or_else(|| malformed("not ELF"))?;
    let names: Vec<&str> = KINDS.iter().map(|(_, f, _)| *f).collect();
    let (_, found) = symbols::find(&elf, &names)?;
    let mut servers = GoServers {
        pie: runtime_vars::is_pie(&elf)?,
        image_base: image_base(&elf),
        ..GoServers::default()
    };
    if found.iter().all(Option::is_none) {
        return Ok(servers);
    }
    servers.offsets.swiss_maps = swiss_maps(&info.go_version) as u32;
    // DWARF, else the committed table, which has the standard library's
    // members only: grpc-go's and x/net's follow their own releases, which
    // a binary does not always record, and are never guessed.
    let (fields, source) = match dwarf::read_server_fields(&elf)? {
        Some(fields) => (fields, None),
        None => match offsets::lookup_server_fields(&info.go_version) {
            Ok((release, fields)) => (fields, Some(release)),
            Err(e) => (ServerFields::default(), Some(e.to_string())),
        },
    };
    servers.request = request_layout(&fields);
    let patterns = servers.request.is_some() as u32;
    for ((program, function, prefix), f) in KINDS.into_iter().zip(found) {
        let Some(f) = f else { continue };
        let known = match prefix {
            "grpc" if source.is_none() => {
                grpc_layout(&elf, &fields)?.map(|g| servers.offsets.grpc = g)
            }
            "grpc" | "xnet" if source.is_some() => None,
            "xnet" => h2_layout(&fields, prefix, "std_req_header").map(|l| {
                servers.offsets.xnet = GoH2Server {
                    pattern: patterns,
                    ..l
                }
            }),
            // Go 1.27's handlers get a ServerRequest: no pattern there.
            "int" => h2_layout(&fields, prefix, "int_req_header").map(|l| servers.offsets.std = l),
            _ => h2_layout(&fields, prefix, &format!("{prefix}_req_header")).map(|l| {
                servers.offsets.std = GoH2Server {
                    pattern: patterns,
                    ..l
                }
            }),
        };
        match (known, &source) {
            (Some(()), _) => servers.probes.push(ServerProbe {
                program,
                function,
                // Past the stack check: a handler's goroutine often grows
                // its stack on entry, which runs the first instruction twice.
                offset: super::prologue::body_offset(&elf, &f)?,
            }),
            (None, None) => servers
                .unsupported
                .push(format!("{function}: its structs are not all in the DWARF")),
            (None, Some(table)) => servers.unsupported.push(format!(
                "{function}: no DWARF ({}; offsets table: {table}): calls made by its \
                 handlers start new traces",
                info.go_version
            )),
        }
    }
    Ok(servers)
}

/// Go 1.24 made maps swiss tables, unless built with
/// GOEXPERIMENT=noswissmap (1.24 and 1.25 only).
fn swiss_maps(go_version: &str) -> bool {
    let minor = go_version
        .strip_prefix("go1.")
        .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|m| m.parse::<u32>().ok())
        .unwrap_or(0);
    minor >= 24 && !go_version.contains("noswissmap")
}

fn h2_layout(f: &ServerFields, prefix: &str, req_header: &str) -> Option<GoH2Server> {
    let field = |name: &str| f.named(&format!("{prefix}_{name}"));
    Some(GoH2Server {
        sc_conn: field("sc_conn")?,
        rw_rws: field("rw_rws")?,
        rws_stream: field("rws_stream")?,
        stream_id: field("stream_id")?,
        req_header: f.named(req_header)?,
        pattern: 0,
    })
}

/// What a request's route is read from: its ServeMux pattern (Go 1.23+),
/// and its method and path to check it is still that request.
fn request_layout(f: &ServerFields) -> Option<RequestLayout> {
    Some(RequestLayout {
        method: f.named("req_method")?,
        url: f.named("req_url")?,
        url_path: f.named("url_path")?,
        pattern: f.named("req_pattern")?,
    })
}

/// grpc-go's server stream layout, and where its incoming metadata's key
/// type is (without it the stream is still tied to its handler, but the
/// caller's `traceparent` is not read).
fn grpc_layout(elf: &Elf, f: &ServerFields) -> Result<Option<GoGrpcServer>, GoError> {
    let (Some(stream_id), Some(stream_ctx), Some(stream_st), Some(server_conn)) = (
        f.named("grpc_stream_id"),
        f.named("grpc_stream_ctx"),
        f.named("grpc_stream_st"),
        f.named("grpc_server_conn"),
    ) else {
        return Ok(None);
    };
    let types = dwarf::struct_types(elf, &[MD_INCOMING_KEY])?;
    let key_offset = types.first().copied().flatten().flatten();
    let types_base = symbols::symbol_address(elf, "runtime.types")?;
    let md_key_type = match (key_offset, types_base, f.named("value_key")) {
        (Some(offset), Some(base), Some(_)) => base + offset,
        _ => {
            log::info!(
                "go: grpc-go's metadata key type not found: incoming traceparent of gRPC \
                 middle tiers not read"
            );
            0
        }
    };
    Ok(Some(GoGrpcServer {
        stream_id,
        stream_ctx,
        stream_st,
        server_conn,
        value_key: f.named("value_key").unwrap_or(0),
        value_val: f.named("value_val").unwrap_or(0),
        _pad: [0; 2],
        md_key_type,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_swiss_from_go_1_24_unless_turned_off() {
        assert!(!swiss_maps("go1.21.13"));
        assert!(!swiss_maps("go1.23.9"));
        assert!(swiss_maps("go1.24.11"));
        assert!(swiss_maps("go1.25.5 X:nodwarf5"));
        assert!(!swiss_maps("go1.25.5 X:noswissmap"));
        assert!(swiss_maps("go1.27.3"));
        assert!(!swiss_maps("devel"));
    }
}
