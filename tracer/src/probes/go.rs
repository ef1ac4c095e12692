//! Go processes: each is inspected once per executable (Go release, struct
//! offsets, where the probed functions are), registered in GO_PROCS so the
//! syscall programs key its requests by goroutine, and its executable gets
//! the one uprobe of the client path. This runs on a thread of its own:
//! inspecting a binary takes tens of milliseconds, which the event pipeline
//! must not wait for. The thread owns the loaded programs, so OpenSSL's
//! probes (`tls`) are attached from here too.
use std::{
    collections::{HashMap, HashSet},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::{
        Arc,
        mpsc::{Receiver, Sender, channel},
    },
};

use anyhow::{Context as _, anyhow};
use aya::{
    Ebpf,
    maps::{HashMap as BpfHashMap, MapData},
    programs::{
        UProbe,
        uprobe::{UProbeLinkId, UProbeScope},
    },
};
use log::{debug, info, warn};
use tracer_common::{GoOffsets, GoServerOffsets, go_probes, maps, tls_probes};

use super::{Feature, Features, tls::TlsProbes};
use crate::{
    golang::{
        self, GoTarget,
        patterns::Patterns,
        servers::{self, GoServers},
    },
    process::maps::image_start,
    stats::Stats,
};

/// What the pipeline tells the Go thread.
#[derive(Debug)]
pub enum GoCommand {
    /// A process started, exec'd or was found at start: instrument it if
    /// it is Go.
    Process(u32),
    /// The process is gone.
    Exited(u32),
    /// The process made an outgoing call: if it is a Go server, its
    /// handlers' calls need the server handler probe.
    MakesCalls(u32),
    /// Answer once everything sent before is done.
    Sync(Sender<()>),
}

/// The pipeline's handle: sending never blocks.
#[derive(Clone)]
pub struct GoTracing {
    tx: Sender<GoCommand>,
}

impl GoTracing {
    pub fn send(&self, command: GoCommand) {
        // The thread only stops when the agent does.
        let _ = self.tx.send(command);
    }

    /// Wait until the Go thread has handled everything sent so far (at
    /// start: the agent is ready once running Go processes are
    /// instrumented).
    pub fn sync(&self) {
        let (tx, rx) = channel();
        self.send(GoCommand::Sync(tx));
        let _ = rx.recv();
    }
}

/// An executable, by device and inode: every process running it shares
/// its uprobes.
type BinaryId = (u64, u64);

/// One inspected executable.
enum Binary {
    NotGo,
    /// Go, but it cannot be instrumented (logged once).
    Unsupported,
    Go {
        /// Its offsets are complete (checked when it was inspected).
        target: Box<GoTarget>,
        /// Entry file offset of each probed function present.
        probes: Vec<(&'static str, &'static str, u64)>,
        /// Attached (processes running it > 0).
        attached: bool,
        /// Its servers' handler probes, once a process of it made a call.
        servers: Option<Box<GoServers>>,
    },
}

/// The server handler programs.
const SERVER_PROGRAMS: [&str; 3] = [
    go_probes::GRPC_SERVER_STREAM.0,
    go_probes::H2_SERVER_STD.0,
    go_probes::H2_SERVER_XNET.0,
];

struct State {
    ebpf: Ebpf,
    go_procs: BpfHashMap<MapData, u32, GoOffsets>,
    go_servers: BpfHashMap<MapData, u32, GoServerOffsets>,
    /// Go processes that made a call, and the server probes attached to
    /// each (this process only).
    server_links: HashMap<u32, Vec<(&'static str, UProbeLinkId)>>,
    /// Their requests' layouts, for the pipeline to read routes with.
    patterns: Patterns,
    proc_root: PathBuf,
    binaries: HashMap<BinaryId, Binary>,
    pids: HashMap<u32, BinaryId>,
    stats: Arc<Stats>,
    /// The uprobe programs that loaded at start (the others' features are
    /// off, and said so then).
    usable: HashSet<&'static str>,
    /// OpenSSL's probes, per process.
    tls: TlsProbes,
}

/// Start the Go thread; it owns the loaded programs from now on (and
/// detaches them when the agent drops the handle and the thread ends).
pub fn spawn(
    mut ebpf: Ebpf,
    features: &Features,
    proc_root: PathBuf,
    stats: Arc<Stats>,
    patterns: Patterns,
) -> anyhow::Result<GoTracing> {
    let usable = [
        (Feature::GoHttpCalls, go_probes::HTTP_ROUND_TRIP.0),
        (Feature::GoGrpcCalls, go_probes::GRPC_NEW_STREAM.0),
        (Feature::GoServerHandlers, SERVER_PROGRAMS[0]),
        (Feature::GoServerHandlers, SERVER_PROGRAMS[1]),
        (Feature::GoServerHandlers, SERVER_PROGRAMS[2]),
        (Feature::Tls, tls_probes::GO_WRITE.0),
        (Feature::Tls, tls_probes::GO_READ.0),
        (Feature::Tls, tls_probes::GO_READ_RET.0),
    ]
    .into_iter()
    .filter(|(f, _)| features.is_on(*f))
    .map(|(_, p)| p)
    .chain(features.cheaper_go_reads().iter().copied())
    .collect();
    let go_procs = BpfHashMap::try_from(
        ebpf.take_map(maps::GO_PROCS)
            .ok_or_else(|| anyhow!("map {} missing from the kernel object", maps::GO_PROCS))?,
    )?;
    let go_servers = BpfHashMap::try_from(
        ebpf.take_map(maps::GO_SERVERS)
            .ok_or_else(|| anyhow!("map {} missing from the kernel object", maps::GO_SERVERS))?,
    )?;
    let tls = TlsProbes::new(
        &mut ebpf,
        proc_root.clone(),
        features.is_on(Feature::Tls),
        stats.clone(),
    );
    let (tx, rx) = channel();
    let state = State {
        tls,
        ebpf,
        go_procs,
        go_servers,
        server_links: HashMap::new(),
        patterns,
        proc_root,
        binaries: HashMap::new(),
        pids: HashMap::new(),
        stats,
        usable,
    };
    std::thread::Builder::new()
        .name("tracer-go".into())
        .spawn(move || run(state, rx))
        .context("starting the Go thread")?;
    Ok(GoTracing { tx })
}

fn run(mut state: State, rx: Receiver<GoCommand>) {
    while let Ok(command) = rx.recv() {
        match command {
            GoCommand::Process(pid) => {
                state.tls.add(&mut state.ebpf, pid);
                state.add(pid);
            }
            GoCommand::Exited(pid) => state.remove(pid),
            GoCommand::MakesCalls(pid) => state.makes_calls(pid),
            GoCommand::Sync(done) => {
                let _ = done.send(());
            }
        }
    }
}

impl State {
    fn add(&mut self, pid: u32) {
        let exe = self.proc_root.join(pid.to_string()).join("exe");
        let Ok(meta) = std::fs::metadata(&exe) else {
            return; // gone already, or a kernel thread
        };
        let id = (meta.dev(), meta.ino());
        if let Some(old) = self.pids.get(&pid).copied() {
            if old == id {
                return;
            }
            self.remove(pid); // exec'd another program
        }
        let Binary::Go {
            target,
            probes,
            attached,
            ..
        } = self
            .binaries
            .entry(id)
            .or_insert_with(|| inspect(&exe, pid, &self.usable))
        else {
            return;
        };
        let Some(offsets) = process_offsets(target, &self.proc_root, pid, meta.ino()) else {
            return;
        };
        if let Err(e) = self.go_procs.insert(pid, offsets, 0) {
            warn!("go: cannot register pid {pid}: {e}");
            return;
        }
        self.pids.insert(pid, id);
        Stats::inc(&self.stats.go_processes);
        info!("go: pid {pid}: requests followed by goroutine");
        if !*attached {
            *attached = true;
            for (program, function, offset) in probes.iter() {
                if !self.usable.contains(program) {
                    continue;
                }
                match attach(&mut self.ebpf, program, &exe, *offset) {
                    Ok(()) => info!("go: pid {pid}: uprobe on {function} (+{offset:#x})"),
                    Err(e) => warn!("go: pid {pid}: no uprobe on {function}: {e:#}"),
                }
            }
        }
    }

    /// Attach the server handler probes to Go process `pid`, once: it
    /// makes outgoing calls, so its handlers' calls need their request.
    fn makes_calls(&mut self, pid: u32) {
        if self.server_links.contains_key(&pid) {
            return;
        }
        let Some(&id) = self.pids.get(&pid) else {
            return; // not a Go process (or not one we follow)
        };
        if !SERVER_PROGRAMS.iter().any(|p| self.usable.contains(p)) {
            return;
        }
        self.server_links.insert(pid, Vec::new());
        let exe = self.proc_root.join(pid.to_string()).join("exe");
        let Some(Binary::Go { servers, .. }) = self.binaries.get_mut(&id) else {
            return;
        };
        let servers = servers.get_or_insert_with(|| {
            let found = servers::inspect(&exe).unwrap_or_else(|e| {
                debug!("go: pid {pid}: servers not inspected: {e}");
                GoServers::default()
            });
            for why in &found.unsupported {
                warn!("go: pid {pid}: no server handler probe: {why}");
            }
            Box::new(found)
        });
        if servers.probes.is_empty() {
            return;
        }
        let mapped_at = if servers.pie {
            let inode = std::fs::metadata(&exe).map(|m| m.ino()).unwrap_or(0);
            match mapped_at(&self.proc_root, pid, inode) {
                Some(at) => at,
                None => return, // gone, or the image is not where it was
            }
        } else {
            0
        };
        let offsets = servers.offsets_at(mapped_at);
        debug!("go: pid {pid}: server offsets {offsets:?}");
        if let Err(e) = self.go_servers.insert(pid, offsets, 0) {
            warn!("go: pid {pid}: cannot register its servers: {e}");
            return;
        }
        let (probes, request) = (servers.probes.clone(), servers.request);
        let mut links = Vec::new();
        for probe in probes {
            if !self.usable.contains(probe.program) {
                continue;
            }
            match attach_one(&mut self.ebpf, probe.program, &exe, probe.offset, pid) {
                Ok(link) => {
                    info!(
                        "go: pid {pid} makes outgoing calls: uprobe on {} (+{:#x}), this \
                         process only",
                        probe.function, probe.offset
                    );
                    links.push((probe.program, link));
                }
                Err(e) => warn!("go: pid {pid}: no uprobe on {}: {e:#}", probe.function),
            }
        }
        if !links.is_empty() {
            Stats::inc(&self.stats.go_server_probes_attached);
            if let Some(layout) = request {
                self.patterns.set(pid, layout);
            }
        }
        self.server_links.insert(pid, links);
    }

    fn remove(&mut self, pid: u32) {
        if self.pids.remove(&pid).is_some() {
            let _ = self.go_procs.remove(&pid);
        }
        if let Some(links) = self.server_links.remove(&pid) {
            let _ = self.go_servers.remove(&pid);
            self.patterns.remove(pid);
            for (program, link) in links {
                let probe: Option<&mut UProbe> = self
                    .ebpf
                    .program_mut(program)
                    .and_then(|p| p.try_into().ok());
                if let Some(probe) = probe
                    && let Err(e) = probe.detach(link)
                {
                    debug!("go: pid {pid}: detaching {program}: {e}");
                }
            }
        }
        // The uprobes stay with the executable (a later process of it uses
        // them); they go when the agent stops.
    }
}

/// The offsets for process `pid`: a PIE executable's addresses (the
/// goroutine table, the HTTP/2 writers' start functions) move by where this
/// process mapped it; when that cannot be read, those are left out (parent
/// goroutines only) rather than wrong.
fn process_offsets(target: &GoTarget, proc_root: &Path, pid: u32, inode: u64) -> Option<GoOffsets> {
    if !target.pie {
        return target.kernel_offsets();
    }
    match mapped_at(proc_root, pid, inode) {
        Some(start) => target.kernel_offsets_at(start),
        None => {
            debug!("go: pid {pid}: PIE image not found in maps: parent goroutines only");
            target.kernel_offsets().map(|mut o| {
                o.allgs = 0;
                o.h2_writers = [0; tracer_common::GO_H2_WRITERS];
                o
            })
        }
    }
}

/// Where process `pid` mapped the start of its executable (inode `inode`).
fn mapped_at(proc_root: &Path, pid: u32, inode: u64) -> Option<u64> {
    let maps = std::fs::read_to_string(proc_root.join(pid.to_string()).join("maps")).ok()?;
    image_start(&maps, inode)
}

/// `(*tls.Conn).Read(b)`'s receiver, `b`'s pointer and `b`'s length: what
/// its RET probe alone needs (`go_tls_read_exit`).
const GO_READ_ARGUMENTS: usize = 3;

/// What an executable is, for the Go thread.
fn inspect(exe: &Path, pid: u32, usable: &HashSet<&'static str>) -> Binary {
    let wanted: Vec<&str> = [
        go_probes::HTTP_ROUND_TRIP,
        go_probes::GRPC_NEW_STREAM,
        tls_probes::GO_WRITE,
        tls_probes::GO_READ,
    ]
    .iter()
    .map(|(_, f)| *f)
    .collect();
    match golang::inspect(exe, &wanted) {
        Ok(None) => Binary::NotGo,
        Ok(Some(target)) => describe(target, pid, usable),
        Err(e) => {
            debug!("go: pid {pid}: not inspected: {e}");
            Binary::NotGo
        }
    }
}

fn describe(target: GoTarget, pid: u32, usable: &HashSet<&'static str>) -> Binary {
    if target.kernel_offsets().is_none() {
        warn!(
            "go: pid {pid} ({}): struct offsets unknown ({}): traced by thread, not goroutine",
            target.version,
            target.offsets_source()
        );
        return Binary::Unsupported;
    }
    let mut probes = Vec::new();
    let (program, function) = go_probes::HTTP_ROUND_TRIP;
    if let Some(f) = target.function(function) {
        probes.push((program, function, f.body_offset));
    }
    // On each RET (never a uretprobe on Go code); only when the stream's
    // members are known.
    let (program, function) = go_probes::GRPC_NEW_STREAM;
    match (target.function(function), target.grpc) {
        (Some(f), Some(_)) => {
            probes.extend(f.return_offsets.iter().map(|&at| (program, function, at)))
        }
        (Some(_), None) => warn!(
            "go: pid {pid}: grpc-go's stream layout unknown (no DWARF): gRPC calls are \
             parented by the connection's writer, not by their caller"
        ),
        (None, _) => {}
    }
    // crypto/tls: writes at entry. Reads where each record is decrypted,
    // when the code allows; else on each RET of Read, and at its entry too
    // unless Read keeps its receiver and `b` where a RET finds them.
    let (program, function) = tls_probes::GO_WRITE;
    if let Some(f) = target.function(function) {
        probes.push((program, function, f.body_offset));
    }
    let (reads, tls_reads) = go_tls_reads(&target, usable);
    probes.extend(reads);
    info!(
        "go: pid {pid}: {}{}{}, offsets from {}, functions from {}, {} probe points, \
         goroutine table {}, TLS reads {tls_reads}",
        target.version,
        if target.stripped { " (stripped)" } else { "" },
        if target.pie { " (PIE)" } else { "" },
        target.offsets_source(),
        target.symbols,
        probes.len(),
        match target.allgs {
            Some(a) => format!("at {a:#x}"),
            None => "not found (ancestry beyond the parent goroutine is not followed)".to_owned(),
        }
    );
    Binary::Go {
        target: Box::new(target),
        probes,
        attached: false,
        servers: None,
    }
}

/// The probes for crypto/tls's reads in `target`, the cheapest its code
/// and the loaded programs allow, and how they are made (for the log):
/// where each record is decrypted; else on each RET of Read, and at its
/// entry too unless Read keeps its receiver and `b` where a RET finds them.
fn go_tls_reads(
    target: &GoTarget,
    usable: &HashSet<&'static str>,
) -> (Vec<(&'static str, &'static str, u64)>, &'static str) {
    let (entry_program, read_function) = tls_probes::GO_READ;
    let Some(read) = target.function(read_function) else {
        return (Vec::new(), "none (no crypto/tls)");
    };
    if !usable.contains(tls_probes::GO_READ_RET.0) {
        return (Vec::new(), "none (TLS off)");
    }
    let (record, reader) = tls_probes::GO_RECORD;
    if let Some(returns) = &target.tls_record_returns
        && target.offsets.tls_conn_input != 0
        && usable.contains(record)
    {
        let probes = returns.iter().map(|&at| (record, reader, at)).collect();
        return (probes, "at its record reader's returns");
    }
    let on_returns = |program| {
        read.return_offsets
            .iter()
            .map(move |&at| (program, read_function, at))
    };
    if read.spilled_arguments >= GO_READ_ARGUMENTS && usable.contains(tls_probes::GO_READ_EXIT.0) {
        return (
            on_returns(tls_probes::GO_READ_EXIT.0).collect(),
            "at Read's returns",
        );
    }
    let probes = std::iter::once((entry_program, read_function, read.body_offset))
        .chain(on_returns(tls_probes::GO_READ_RET.0))
        .collect();
    (probes, "at Read's entry and returns")
}

/// Attach `program` at `offset` of `exe` for process `pid` only.
fn attach_one(
    ebpf: &mut Ebpf,
    program: &'static str,
    exe: &Path,
    offset: u64,
    pid: u32,
) -> anyhow::Result<UProbeLinkId> {
    let probe: &mut UProbe = ebpf
        .program_mut(program)
        .ok_or_else(|| anyhow!("program {program} missing from the kernel object"))?
        .try_into()?;
    let pid = std::num::NonZeroU32::new(pid).ok_or_else(|| anyhow!("pid 0"))?;
    probe
        .attach(offset, exe, UProbeScope::OneProcess(pid))
        .context("attaching")
}

/// Attach `program`, loaded at start, at `offset` of `exe`.
fn attach(ebpf: &mut Ebpf, program: &'static str, exe: &Path, offset: u64) -> anyhow::Result<()> {
    let probe: &mut UProbe = ebpf
        .program_mut(program)
        .ok_or_else(|| anyhow!("program {program} missing from the kernel object"))?
        .try_into()?;
    // Attached to the executable's inode through the process's exe link,
    // which works even when the file was replaced or deleted.
    probe
        .attach(offset, exe, UProbeScope::AllProcesses)
        .context("attaching")?;
    Ok(())
}
