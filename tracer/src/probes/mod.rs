//! Load the kernel programs, fill their configuration, attach them.
pub mod environment;
mod exe_selection;
pub mod features;
pub mod floor;
pub mod go;
pub mod kernel_offsets;
pub mod programs;
pub mod tls;
pub mod verifier;

use anyhow::{Context as _, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, ProgramArray, RingBuf, SockHash},
    programs::{CgroupAttachMode, SkMsg, SkSkb, SockOps, TracePoint},
};
use log::{debug, info, warn};

pub use features::{Feature, Features};
use tracer_common::{Config, MAX_CAPTURE, counter, maps, tail, tls_probes};

/// The syscall chain's tail programs, by slot.
const TAIL_SLOTS: [(u32, &str); tail::COUNT as usize] = {
    let mut out = [(0, ""); tail::COUNT as usize];
    let mut i = 0;
    while i < out.len() {
        out[i] = (i as u32, tail::PROGRAMS[i]);
        i += 1;
    }
    out
};

/// (program, tracepoint category, tracepoint name) for every attachment.
pub(crate) const ATTACHMENTS: &[(&str, &str, &str)] = &[
    ("enter_write", "syscalls", "sys_enter_write"),
    ("enter_write", "syscalls", "sys_enter_sendto"),
    ("enter_readv", "syscalls", "sys_enter_readv"),
    ("enter_writev", "syscalls", "sys_enter_writev"),
    ("enter_recvmsg", "syscalls", "sys_enter_recvmsg"),
    ("enter_sendmsg", "syscalls", "sys_enter_sendmsg"),
    ("enter_sendfile", "syscalls", "sys_enter_sendfile64"),
    ("enter_connect", "syscalls", "sys_enter_connect"),
    ("enter_accept", "syscalls", "sys_enter_accept"),
    ("enter_accept", "syscalls", "sys_enter_accept4"),
    ("enter_close", "syscalls", "sys_enter_close"),
    ("exit_read", "syscalls", "sys_exit_read"),
    ("exit_read", "syscalls", "sys_exit_recvfrom"),
    ("exit_io", "syscalls", "sys_exit_write"),
    ("exit_io", "syscalls", "sys_exit_sendto"),
    ("exit_io", "syscalls", "sys_exit_readv"),
    ("exit_io", "syscalls", "sys_exit_writev"),
    ("exit_io", "syscalls", "sys_exit_recvmsg"),
    ("exit_io", "syscalls", "sys_exit_sendmsg"),
    ("exit_io", "syscalls", "sys_exit_sendfile64"),
    ("exit_io", "syscalls", "sys_exit_connect"),
    ("exit_io", "syscalls", "sys_exit_accept"),
    ("exit_io", "syscalls", "sys_exit_accept4"),
    ("sched_fork", "sched", "sched_process_fork"),
    ("sched_exec", "sched", "sched_process_exec"),
    ("sched_exit", "sched", "sched_process_exit"),
];

/// What the kernel side should trace.
#[derive(Clone, Debug, Default)]
pub struct ProbeOptions {
    /// Payload prefix copied per syscall.
    pub capture_len: u32,
    /// Ring buffer size in bytes (a power of two, multiple of the page size);
    /// 0: the kernel object's default.
    pub ring_bytes: u32,
    /// A selection was given: only selected processes/ports are traced.
    pub selective: bool,
    pub ports: Vec<u16>,
    /// --exe: executables the kernel selects at exec (the agent matches
    /// them too; see `exe_selection`).
    pub exes: Vec<String>,
    /// Write `traceparent` into outgoing HTTP/1 and HTTP/2 requests (sock_ops + sk_msg).
    pub inject: bool,
    /// Root-span sampling threshold (see `Config::sample_threshold`).
    pub sample_threshold: u64,
    /// An optional part that fails to load stops the agent instead of
    /// turning its feature off.
    pub require_all: bool,
    /// Programs to treat as refused without loading them (tests of the
    /// degraded start).
    pub fail_programs: Vec<String>,
}

/// The loaded programs; dropping it detaches everything.
pub struct Probes {
    /// The programs and their links; taken by the Go thread, which attaches
    /// uprobes as Go processes come (and keeps them alive).
    pub ebpf: Option<Ebpf>,
    /// Taken by whoever decides the selection at run time.
    pub traced_pids: Option<HashMap<MapData, u32, u8>>,
    pub counters: PerCpuArray<MapData, u64>,
    pub events: Option<RingBuf<MapData>>,
    /// Taken by whoever changes settings at run time.
    pub config: Option<Array<MapData, Config>>,
    /// What works, given which optional programs loaded.
    pub features: Features,
    /// The kernel empties a program array when its last user-space
    /// reference goes: kept for as long as the programs run.
    _tail_calls: ProgramArray<MapData>,
    _tls_tails: ProgramArray<MapData>,
}

impl Probes {
    pub fn load(opts: &ProbeOptions) -> anyhow::Result<Self> {
        environment::prepare()?;
        let mut ebpf = open_object(opts)?;
        let fork_child_pid_offset =
            environment::tracepoint_field_offset("sched", "sched_process_fork", "child_pid")?;
        // Recent kernels say which thread's exit ends its process.
        let exit_group_dead_offset =
            environment::tracepoint_field_offset("sched", "sched_process_exit", "group_dead")
                .unwrap_or_else(|e| {
                    info!(
                        "a process ends with its main thread here (no group_dead): a process \
                         whose main thread ends alone is no longer traced ({e:#})"
                    );
                    0
                });
        let offsets = kernel_offsets::read().context("reading kernel struct offsets")?;
        debug!("kernel offsets: {offsets:?}");
        let mut config = Config {
            agent_tgid: std::process::id(),
            capture_len: opts.capture_len.min(MAX_CAPTURE as u32),
            selective: opts.selective as u8,
            select_ports: !opts.ports.is_empty() as u8,
            inject: opts.inject as u8,
            sample_threshold: opts.sample_threshold,
            fork_child_pid_offset,
            exit_group_dead_offset,
            offsets,
            ..Config::default()
        };
        let mut config_map: Array<_, Config> = Array::try_from(take(&mut ebpf, maps::CONFIG)?)?;
        let mut ports: HashMap<_, u16, u8> =
            HashMap::try_from(map(&mut ebpf, maps::TRACED_PORTS)?)?;
        for port in &opts.ports {
            ports.insert(port, 1, 0).context("writing TRACED_PORTS")?;
        }
        match exe_selection::fill(&mut ebpf, &opts.exes) {
            Ok(Some(offset)) => {
                config.select_exes = 1;
                config.exec_filename_offset = offset;
            }
            Ok(None) => {}
            Err(e) => warn!(
                "executables are selected only once the agent reads each exec: a process that \
                 connects at once may go untraced at first: {e:#}"
            ),
        }

        // Optional programs first: what fails among them only turns its
        // feature off (or stops the agent under --require-all), before
        // anything is attached.
        let mut loads = Vec::new();
        for name in features::optional_programs(opts.inject) {
            let forced = opts.fail_programs.iter().any(|f| f == name);
            let load = programs::load(&mut ebpf, name, forced);
            debug!(
                "program {name}: {:?} verified instructions, {:?}",
                load.verified_insns, load.load_time
            );
            loads.push(load);
        }
        let tail_calls = fill_tail_calls(&mut ebpf, &loads, maps::TAIL_CALLS, &TAIL_SLOTS)?;
        let tls_tails = fill_tail_calls(&mut ebpf, &loads, maps::TLS_TAILS, &tls_probes::TAILS)?;
        let mut features = Features::new(opts.inject, &loads);
        if (features.is_on(Feature::Inject) || features.is_on(Feature::InjectHttp2))
            && let Err(e) = attach_injection(&mut ebpf)
        {
            features.turn_off_injection(&format!("{e:#}"));
        }
        if !features.is_on(Feature::Inject) && !features.is_on(Feature::InjectHttp2) {
            // Nothing would carry the header: the kernel need not look for
            // where it would go.
            config.inject = 0;
        }
        config_map.set(0, config, 0).context("writing CONFIG")?;
        for warning in features.warnings() {
            warn!("{warning}");
        }
        if opts.require_all && !features.all_wanted_on() {
            bail!(
                "--require-all: an optional part of the agent did not load (see the warnings \
                 above): {}",
                features.off_summary()
            );
        }

        // Capture itself: the agent cannot run without it.
        for (prog, category, name) in ATTACHMENTS {
            let load = programs::load(&mut ebpf, prog, false);
            if let Some(e) = &load.error {
                bail!("the kernel refused program {prog}, without which nothing is captured: {e}");
            }
            let program: &mut TracePoint = ebpf
                .program_mut(prog)
                .ok_or_else(|| anyhow!("program {prog} missing from the kernel object"))?
                .try_into()?;
            program
                .attach(category, name)
                .with_context(|| format!("attaching {prog} to {category}:{name}"))?;
        }
        info!("{} tracepoints attached", ATTACHMENTS.len());
        info!("features: {}", features.summary());

        let traced_pids = HashMap::try_from(take(&mut ebpf, maps::TRACED_PIDS)?)?;
        let counters = PerCpuArray::try_from(take(&mut ebpf, maps::COUNTERS)?)?;
        let events = RingBuf::try_from(take(&mut ebpf, maps::EVENTS)?)?;
        Ok(Self {
            ebpf: Some(ebpf),
            traced_pids: Some(traced_pids),
            counters,
            events: Some(events),
            config: Some(config_map),
            features,
            _tail_calls: tail_calls,
            _tls_tails: tls_tails,
        })
    }

    /// Kernel-side counters summed over CPUs, indexed by `counter::*`.
    pub fn kernel_counters(&self) -> [u64; counter::COUNT as usize] {
        let mut out = [0u64; counter::COUNT as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            if let Ok(values) = self.counters.get(&(i as u32), 0) {
                *slot = values.iter().sum();
            }
        }
        out
    }
}

/// The kernel object, its maps created, no program loaded yet.
fn open_object(opts: &ProbeOptions) -> anyhow::Result<Ebpf> {
    let mut loader = EbpfLoader::new();
    if opts.ring_bytes != 0 {
        loader.map_max_entries(maps::EVENTS, opts.ring_bytes);
    }
    loader
        .load(aya::include_bytes_aligned!(concat!(
            env!("OUT_DIR"),
            "/tracer"
        )))
        .context("loading the kernel object")
}

pub(crate) fn map<'a>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut aya::maps::Map> {
    ebpf.map_mut(name)
        .ok_or_else(|| anyhow!("map {name} missing from the kernel object"))
}

fn take(ebpf: &mut Ebpf, name: &str) -> anyhow::Result<aya::maps::Map> {
    ebpf.take_map(name)
        .ok_or_else(|| anyhow!("map {name} missing from the kernel object"))
}

/// Put the tail-called programs that loaded into their slots; they run
/// inside the attached ones, so they are never attached themselves. An
/// empty slot makes the tail call fall through: the caller goes on without
/// that step (see the programs' "the chain broke" paths).
fn fill_tail_calls(
    ebpf: &mut Ebpf,
    loads: &[programs::ProgramLoad],
    array_name: &str,
    programs: &[(u32, &str)],
) -> anyhow::Result<ProgramArray<MapData>> {
    let mut slots = Vec::new();
    for (slot, name) in programs {
        if !loads.iter().any(|l| l.name == *name && l.loaded()) {
            continue;
        }
        let program = ebpf
            .program(name)
            .ok_or_else(|| anyhow!("program {name} missing from the kernel object"))?;
        slots.push((*slot, program.fd()?.try_clone()?));
    }
    let mut array: ProgramArray<_> = ProgramArray::try_from(take(ebpf, array_name)?)?;
    for (slot, fd) in &slots {
        array
            .set(*slot, fd, 0)
            .with_context(|| format!("filling tail-call slot {slot}"))?;
    }
    Ok(array)
}

/// Attach sock_ops to the cgroup v2 root and sk_msg to the SockHash (both
/// loaded already).
fn attach_injection(ebpf: &mut Ebpf) -> anyhow::Result<()> {
    let root = environment::cgroup2_root().ok_or_else(|| anyhow!("no cgroup v2 mount"))?;
    let sockhash: SockHash<_, u64> = SockHash::try_from(
        ebpf.map(maps::SOCKHASH)
            .ok_or_else(|| anyhow!("map {} missing", maps::SOCKHASH))?,
    )?;
    let sockhash_fd = sockhash.fd().try_clone()?;
    let sk_msg: &mut SkMsg = ebpf
        .program_mut(features::SK_MSG)
        .ok_or_else(|| anyhow!("program {} missing", features::SK_MSG))?
        .try_into()?;
    sk_msg.attach(&sockhash_fd).context("attaching sk_msg")?;
    // Before any socket joins the SockHash: see `pass_ingress`.
    let sk_skb: &mut SkSkb = ebpf
        .program_mut(features::SK_SKB)
        .ok_or_else(|| anyhow!("program {} missing", features::SK_SKB))?
        .try_into()?;
    sk_skb
        .attach(&sockhash_fd)
        .context("attaching the sk_skb verdict")?;
    let sock_ops: &mut SockOps = ebpf
        .program_mut(features::SOCK_OPS)
        .ok_or_else(|| anyhow!("program {} missing", features::SOCK_OPS))?
        .try_into()?;
    let cgroup =
        std::fs::File::open(&root).with_context(|| format!("opening {}", root.display()))?;
    sock_ops
        .attach(cgroup, CgroupAttachMode::Single)
        .context("attaching sock_ops to the cgroup v2 root")?;
    info!("traceparent injection: sock_ops on {}", root.display());
    Ok(())
}
