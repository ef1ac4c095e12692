//! Facts about Go executables that the kernel side cannot see: which Go
//! toolchain built a binary (for the `process.runtime.*` resource
//! attributes), where the functions the uprobes go on are and where they
//! return, and the struct member offsets the kernel programs read.
//!
//! [`inspect`] runs once per new Go executable. It reads headers and the
//! few sections it needs, never the whole file: .symtab (else Go's
//! pclntab), the probed functions' code, and .debug_info (else the
//! committed per-release offsets table).
pub mod buildinfo;
mod dwarf;
mod elf;
mod error;
pub mod offsets;
pub mod patterns;
mod pclntab;
mod prologue;
mod returns;
mod runtime_vars;
pub mod servers;
mod spills;
pub mod symbols;
#[cfg(test)]
mod test_programs;
#[cfg(test)]
mod tests;
mod tls_records;

use std::{fmt, path::Path};

pub use error::GoError;
pub use offsets::{FIELDS, Field, GoOffsets, GrpcOffsets};
pub use symbols::SymbolSource;

use tracer_common::tls_probes;

use self::elf::Elf;

/// Functions that Go's HTTP/2 clients start a goroutine with for each
/// request (`go cs.doRequest(...)`; the compiler wraps the call in a
/// `gowrap` function since Go 1.22 and a `funcN` closure before), in
/// net/http's bundled copy (its own package since Go 1.27) and in
/// golang.org/x/net/http2. A writer goroutine started with one of these
/// belongs to the request of whoever called RoundTrip.
pub const H2_WRITER_STARTS: &[&str] = &[
    "net/http.(*http2clientStream).doRequest",
    "net/http.(*http2ClientConn).roundTrip.gowrap1",
    "net/http.(*http2ClientConn).RoundTrip.gowrap1",
    "net/http.(*http2ClientConn).RoundTrip.func1",
    "net/http.(*http2ClientConn).RoundTrip.func2",
    "net/http/internal/http2.(*clientStream).doRequest",
    "net/http/internal/http2.(*ClientConn).roundTrip.gowrap1",
    "golang.org/x/net/http2.(*clientStream).doRequest",
    "golang.org/x/net/http2.(*ClientConn).roundTrip.gowrap1",
    "golang.org/x/net/http2.(*ClientConn).RoundTrip.gowrap1",
    "golang.org/x/net/http2.(*ClientConn).RoundTrip.func1",
    "golang.org/x/net/http2.(*ClientConn).RoundTrip.func2",
    "golang.org/x/net/http2.(*ClientConn).RoundTrip.func3",
];

/// The functions probed unless the caller asks for others.
pub const DEFAULT_FUNCTIONS: &[&str] = &["net/http.(*persistConn).roundTrip"];

/// grpc-go's client transport opening a stream: its returns are probed,
/// and the binary's DWARF then has to say where the stream's id and
/// connection are (`GoTarget::grpc`).
const GRPC_NEW_STREAM: &str = tracer_common::go_probes::GRPC_NEW_STREAM.1;

/// A function to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoFunction {
    pub name: String,
    /// Virtual address as linked.
    pub address: u64,
    /// Bytes of code.
    pub size: u64,
    /// File offset of the first instruction.
    pub entry_offset: u64,
    /// File offset of the body, past the prologue's stack check: where
    /// the entry uprobe goes (see `prologue`).
    pub body_offset: u64,
    /// File offsets of its RET instructions: where return probes go (never
    /// a uretprobe on Go code; see `returns`).
    pub return_offsets: Vec<u64>,
    /// How many of its first integer arguments stay in their spill slots
    /// for its whole run (see `spills`): a probe on a RET can read them.
    pub spilled_arguments: usize,
}

/// Where a binary's struct offsets came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsSource {
    /// The binary's DWARF.
    Dwarf,
    /// The binary's DWARF, with `fields` members taken from the table of
    /// `release`: their types are not linked in (a program without an HTTP
    /// client has no `net/http.persistConn`), so nothing reads them anyway.
    DwarfAndTable { release: String, fields: usize },
    /// No DWARF: the table of `release`, the binary's own release or
    /// (`exact` false) another of the same minor release.
    Table { release: String, exact: bool },
    /// No DWARF and no table entry.
    Unknown { reason: String },
}

impl fmt::Display for OffsetsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dwarf => f.write_str("DWARF"),
            Self::DwarfAndTable { release, fields } => {
                write!(f, "DWARF, {fields} from the Go {release} table")
            }
            Self::Table {
                release,
                exact: true,
            } => write!(f, "the Go {release} table"),
            Self::Table {
                release,
                exact: false,
            } => write!(f, "the Go {release} table (same minor release)"),
            Self::Unknown { reason } => f.write_str(reason),
        }
    }
}

/// What [`inspect`] learnt about a Go executable.
#[derive(Debug, Clone)]
pub struct GoTarget {
    /// The toolchain, as build info has it: `go1.25.5`.
    pub version: String,
    /// No `.symtab` (`-ldflags=-s`, `strip`): functions come from pclntab.
    pub stripped: bool,
    pub symbols: SymbolSource,
    /// Check `offsets.found` (or [`GoTarget::kernel_offsets`]) before use.
    pub offsets: GoOffsets,
    pub source: OffsetsSource,
    /// The wanted functions present, in the order asked for.
    pub functions: Vec<GoFunction>,
    /// The wanted functions absent (not linked in, or always inlined).
    pub missing_functions: Vec<String>,
    /// Link-time address of `runtime.allgs`, the goroutine table (`None`:
    /// not found).
    pub allgs: Option<u64>,
    /// Link-time addresses of the [`H2_WRITER_STARTS`] functions present.
    pub h2_writers: Vec<u64>,
    /// Position-independent: the addresses above move by each process's
    /// load bias (see [`GoTarget::kernel_offsets_at`]).
    pub pie: bool,
    /// Link-time address of the start of the file (the PT_LOAD segment at
    /// file offset 0): where the process's first mapping of it is.
    pub image_base: u64,
    /// grpc-go's client stream and transport members, when the binary
    /// links its client transport (`GRPC_NEW_STREAM` was asked for and is
    /// there) and its DWARF has them all.
    pub grpc: Option<GrpcOffsets>,
    /// The RETs of crypto/tls's record reader to probe (file offsets), when
    /// its code allows (`tls_records`).
    pub tls_record_returns: Option<Vec<u64>>,
}

impl GoTarget {
    pub fn function(&self, name: &str) -> Option<&GoFunction> {
        self.functions.iter().find(|f| f.name == name)
    }

    pub fn offsets_source(&self) -> &OffsetsSource {
        &self.source
    }

    /// The offsets for a process whose first mapping of the executable
    /// starts at `mapped_at` (only PIE binaries care): addresses relocated
    /// by the load bias.
    pub fn kernel_offsets_at(&self, mapped_at: u64) -> Option<tracer_common::GoOffsets> {
        let mut o = self.kernel_offsets()?;
        if self.pie {
            for address in std::iter::once(&mut o.allgs).chain(o.h2_writers.iter_mut()) {
                *address = relocate(*address, self.image_base, mapped_at);
            }
        }
        Some(o)
    }

    /// The offsets as the kernel programs take them, addresses as linked;
    /// `None` unless every one is known.
    pub fn kernel_offsets(&self) -> Option<tracer_common::GoOffsets> {
        let o = &self.offsets;
        o.is_complete().then(|| tracer_common::GoOffsets {
            g_goid: o.g_goid,
            g_parent_goid: o.g_parent_goid,
            persist_conn_conn: o.persist_conn_conn,
            conn_fd: o.conn_fd,
            netfd_pfd: o.netfd_pfd,
            fd_sysfd: o.fd_sysfd,
            netfd_net: o.netfd_net,
            g_startpc: o.g_startpc,
            grpc_stream_id: self.grpc.map_or(0, |g| g.stream_id),
            grpc_stream_ct: self.grpc.map_or(0, |g| g.stream_ct),
            grpc_client_conn: self.grpc.map_or(0, |g| g.client_conn),
            tls_conn_input: o.tls_conn_input,
            allgs: self.allgs.unwrap_or(0),
            h2_writers: std::array::from_fn(|i| self.h2_writers.get(i).copied().unwrap_or(0)),
        })
    }
}

/// Everything the probes need about the executable at `path` and the
/// named `functions` in it; `None` when it is not a Go ELF binary.
pub fn inspect(path: &Path, functions: &[&str]) -> Result<Option<GoTarget>, GoError> {
    let Some(info) = buildinfo::read(path)? else {
        return Ok(None);
    };
    let Some(elf) = Elf::open(path)? else {
        return Ok(None);
    };
    // The kernel side reads `g` through the x86-64 TLS layout too, so
    // nothing about another machine's binary would be usable.
    if elf.architecture != object::Architecture::X86_64 {
        return Err(elf.unsupported(format!(
            "Go probes need x86-64, this is {:?}",
            elf.architecture
        )));
    }
    let (symbols, found) = symbols::find(&elf, functions)?;
    let mut probed = Vec::new();
    let mut missing_functions = Vec::new();
    for (name, function) in functions.iter().zip(found) {
        let Some(function) = function else {
            missing_functions.push((*name).to_owned());
            continue;
        };
        let code = returns::code(&elf, &function)?;
        let return_offsets = returns::ret_offsets_in(&elf, &function, &code)?;
        let body_offset = prologue::body_offset_in(&function, &code);
        let spilled_arguments = spills::spilled_arguments(&function, &code);
        probed.push(GoFunction {
            name: function.name,
            address: function.address,
            size: function.size,
            entry_offset: function.entry_offset,
            body_offset,
            return_offsets,
            spilled_arguments,
        });
    }
    let (offsets, source) = struct_offsets(&elf, &info.go_version)?;
    // Only with DWARF: grpc-go's layout follows its own releases, which a
    // GOPATH build does not record.
    let grpc = if probed.iter().any(|f| f.name == GRPC_NEW_STREAM) {
        dwarf::read_grpc_offsets(&elf)?.filter(|g| g.is_complete())
    } else {
        None
    };
    // Without it only the parent of a goroutine is known: not worth
    // failing the rest for.
    let allgs = runtime_vars::allgs_address(&elf).unwrap_or_else(|e| {
        log::debug!("{}: runtime.allgs not found: {e}", path.display());
        None
    });
    let tls_record_returns = if functions.contains(&tls_probes::GO_READ.1) {
        tls_record_returns(&elf)?
    } else {
        None
    };
    let (_, found) = symbols::find(&elf, H2_WRITER_STARTS)?;
    let h2_writers = found.into_iter().flatten().map(|f| f.address).collect();
    let image_base = image_base(&elf);
    Ok(Some(GoTarget {
        version: info.go_version,
        stripped: elf.section(".symtab").is_none(),
        symbols,
        offsets,
        source,
        functions: probed,
        missing_functions,
        allgs,
        h2_writers,
        pie: runtime_vars::is_pie(&elf)?,
        image_base,
        grpc,
        tls_record_returns,
    }))
}

/// Where crypto/tls's record reader returns with a record (see
/// `tls_records`), as file offsets; `None` when it is not there or not of
/// the shape its probe relies on.
fn tls_record_returns(elf: &Elf) -> Result<Option<Vec<u64>>, GoError> {
    let names = [tls_probes::GO_RECORD.1, tls_probes::GO_RETRY_RECORD];
    let (_, found) = symbols::find(elf, &names)?;
    let [Some(read), retry] = &found[..] else {
        return Ok(None);
    };
    let nested: Vec<u64> = std::iter::once(read.address)
        .chain(retry.as_ref().map(|f| f.address))
        .collect();
    tls_records::record_returns(elf, read, &nested)
}

/// Where the executable starts as linked: its PT_LOAD segment at file
/// offset 0, the process's first mapping of it.
pub(crate) fn image_base(elf: &Elf) -> u64 {
    elf.segments()
        .iter()
        .filter(|s| s.offset == 0)
        .map(|s| s.address)
        .min()
        .unwrap_or(0)
}

/// `address` as linked in a PIE executable whose image starts at
/// `image_base`, in a process that mapped it at `mapped_at`; 0 (unknown)
/// stays 0.
pub(crate) fn relocate(address: u64, image_base: u64, mapped_at: u64) -> u64 {
    match address {
        0 => 0,
        a => a.wrapping_add(mapped_at.wrapping_sub(image_base)),
    }
}

/// From DWARF when the binary has it, else from the table.
fn struct_offsets(elf: &Elf, go_version: &str) -> Result<(GoOffsets, OffsetsSource), GoError> {
    match dwarf::read_offsets(elf)? {
        Some(offsets) if offsets.is_complete() => Ok((offsets, OffsetsSource::Dwarf)),
        Some(mut offsets) => match offsets::lookup(go_version) {
            Ok(entry) => {
                let fields = offsets.complete_from(&entry.offsets);
                let release = entry.release;
                Ok((offsets, OffsetsSource::DwarfAndTable { release, fields }))
            }
            // What DWARF has is still right; the caller sees what is not.
            Err(_) => Ok((offsets, OffsetsSource::Dwarf)),
        },
        None => match offsets::lookup(go_version) {
            Ok(entry) => Ok((
                entry.offsets,
                OffsetsSource::Table {
                    release: entry.release,
                    exact: entry.exact,
                },
            )),
            Err(e) => Ok((
                GoOffsets::default(),
                OffsetsSource::Unknown {
                    reason: e.to_string(),
                },
            )),
        },
    }
}

/// The offsets table (JSON) read from the DWARF of `binaries`, one per Go
/// release: what `tracer go-offsets` prints for `cargo xtask go-offsets`.
/// Every field of [`FIELDS`] must be found in every binary; the standard
/// library's server members are taken as found.
pub fn offsets_table(binaries: &[&Path]) -> Result<String, GoError> {
    let mut releases = Vec::new();
    for &path in binaries {
        let malformed = |reason: &str| GoError::Malformed {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let info = buildinfo::read(path)?.ok_or_else(|| malformed("not a Go binary"))?;
        let release = offsets::release_of(&info.go_version)
            .ok_or_else(|| malformed("not built by a Go release"))?;
        let elf = Elf::open(path)?.ok_or_else(|| malformed("not ELF"))?;
        let offsets = dwarf::read_offsets(&elf)?.ok_or_else(|| malformed("no DWARF"))?;
        if !offsets.is_complete() {
            return Err(GoError::MissingFields {
                path: path.to_owned(),
                missing: offsets.missing().join(", "),
            });
        }
        // The standard library's HTTP/2 server members, for stripped
        // binaries' handler probes.
        let server = dwarf::read_server_fields(&elf)?.unwrap_or_default();
        releases.push((release, offsets, server));
    }
    Ok(offsets::render_table(&releases))
}
