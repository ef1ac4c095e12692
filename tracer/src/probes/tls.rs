//! OpenSSL in traced processes: where its API is (the system's libssl, a
//! libssl a process maps from elsewhere, or an executable that links
//! OpenSSL in and exports it), and the uprobes on it.
//!
//! They are attached once per file, for every process that runs it: a
//! short-lived client (curl) does its TLS within milliseconds of its exec,
//! before probes attached for it alone could be. The kernel programs
//! return at once for processes that are not traced, but the trap of a
//! uprobe hit is paid by every caller (see the README).
use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context as _, anyhow};
use aya::{
    Ebpf,
    programs::{UProbe, uprobe::UProbeScope},
};
use log::{debug, info, warn};
use object::{Object as _, ObjectSymbol as _};
use tracer_common::tls_probes;

use crate::{process::maps::files_named, stats::Stats};

/// Where distributions put the system's libssl: a process that loads it
/// after start (Python imports `ssl` late) finds the probes already there.
const LIBRARY_DIRS: [&str; 6] = [
    "/usr/lib/x86_64-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/usr/lib64",
    "/lib64",
    "/usr/lib",
    "/usr/local/lib",
];
const LIBRARY_NAMES: [&str; 2] = ["libssl.so.3", "libssl.so.1.1"];

/// A file by device and inode.
type FileId = (u64, u64);

pub struct TlsProbes {
    proc_root: PathBuf,
    /// The programs loaded (the feature is on).
    usable: bool,
    /// Files probed (they stay until the agent stops).
    probed: Vec<FileId>,
    /// Executables looked at: whether each exports OpenSSL's API.
    exports: HashMap<FileId, bool>,
    stats: Arc<Stats>,
}

impl TlsProbes {
    /// Probe the system's libssl at once (when the feature is on).
    pub fn new(ebpf: &mut Ebpf, proc_root: PathBuf, usable: bool, stats: Arc<Stats>) -> Self {
        let mut probes = Self {
            proc_root,
            usable,
            probed: Vec::new(),
            exports: HashMap::new(),
            stats,
        };
        if usable {
            let system: Vec<(FileId, PathBuf)> = system_libraries()
                .filter_map(|p| Some((file_id(&p)?, p)))
                .collect();
            if system.is_empty() {
                warn!(
                    "tls: no system libssl found: only processes that map their own get TLS probes"
                );
            }
            probes.probe(ebpf, system, "the system's");
        }
        probes
    }

    /// Probe the OpenSSL process `pid` brings (a libssl from elsewhere, or
    /// its executable), unless probed already.
    pub fn add(&mut self, ebpf: &mut Ebpf, pid: u32) {
        if !self.usable {
            return;
        }
        let targets = self.targets(pid);
        self.probe(ebpf, targets, &format!("pid {pid}:"));
    }

    fn probe(&mut self, ebpf: &mut Ebpf, targets: Vec<(FileId, PathBuf)>, whose: &str) {
        for (id, target) in targets {
            if self.probed.contains(&id) {
                continue;
            }
            let mut functions = Vec::new();
            for (program, function) in tls_probes::WRITE
                .iter()
                .chain(&tls_probes::READ)
                .chain(&tls_probes::READ_RET)
            {
                match attach(ebpf, program, function, &target) {
                    Ok(()) => {
                        if !functions.contains(function) {
                            functions.push(*function);
                        }
                    }
                    // SSL_read_ex is OpenSSL 1.1.1+; a library without one
                    // of them still gives the others.
                    Err(e) => debug!("tls: no uprobe on {function}: {e:#}"),
                }
            }
            if functions.is_empty() {
                warn!(
                    "tls: {whose} {}: no OpenSSL function could be probed",
                    target.display()
                );
            } else {
                // Only now: a file reached through a process that exited
                // meanwhile is tried again through the next one.
                self.probed.push(id);
                Stats::inc(&self.stats.tls_files_probed);
                info!(
                    "tls: {whose} {}: uprobes on {}",
                    target.display(),
                    functions.join(" ")
                );
            }
        }
    }

    /// The files of process `pid` that hold OpenSSL's API, as paths
    /// through its root (it may be in a container).
    fn targets(&mut self, pid: u32) -> Vec<(FileId, PathBuf)> {
        let proc = self.proc_root.join(pid.to_string());
        let root = proc.join("root");
        let maps = std::fs::read_to_string(proc.join("maps")).unwrap_or_default();
        let mut out: Vec<(FileId, PathBuf)> = files_named(&maps, "libssl.so")
            .into_iter()
            .map(|path| root.join(path.trim_start_matches('/')))
            .filter_map(|p| Some((file_id(&p)?, p)))
            .collect();
        let exe = proc.join("exe");
        if let Some(id) = file_id(&exe) {
            let exports = match self.exports.get(&id) {
                Some(&known) => known,
                // Kept only once read: a process that exits while its
                // executable is read says nothing about the file.
                None => match exports_openssl(&exe) {
                    Ok(known) => *self.exports.entry(id).or_insert(known),
                    Err(e) => {
                        debug!("tls: pid {pid}: executable not read: {e:#}");
                        false
                    }
                },
            };
            if exports {
                out.push((id, exe));
            }
        }
        out
    }
}

fn file_id(path: &Path) -> Option<FileId> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.dev(), meta.ino()))
}

fn system_libraries() -> impl Iterator<Item = PathBuf> {
    LIBRARY_DIRS.iter().flat_map(|dir| {
        LIBRARY_NAMES
            .iter()
            .map(move |name| Path::new(dir).join(name))
    })
}

/// Whether the ELF file at `path` defines (not imports) `SSL_write` and
/// `SSL_read`: OpenSSL linked into an executable that exports it (Node).
fn exports_openssl(path: &Path) -> anyhow::Result<bool> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // Read lazily: such an executable is ~100 MB; only its symbol tables
    // are looked at.
    let cache = object::ReadCache::new(file);
    let elf = object::File::parse(&cache).with_context(|| format!("parsing {}", path.display()))?;
    let defines = |name: &str| {
        elf.dynamic_symbols()
            .any(|s| s.is_definition() && s.name() == Ok(name))
    };
    Ok(defines("SSL_write") && defines("SSL_read"))
}

/// Attach `program` (loaded at start) to `function` in `target`.
fn attach(ebpf: &mut Ebpf, program: &str, function: &str, target: &Path) -> anyhow::Result<()> {
    let probe: &mut UProbe = ebpf
        .program_mut(program)
        .ok_or_else(|| anyhow!("program {program} missing from the kernel object"))?
        .try_into()?;
    probe
        .attach(function, target, UProbeScope::AllProcesses)
        .with_context(|| format!("attaching to {function} in {}", target.display()))?;
    Ok(())
}
