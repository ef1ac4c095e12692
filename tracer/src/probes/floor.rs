//! `tracer floor`: the agent's tracepoints with programs that return at
//! once (tracer-ebpf's `floor.rs`), attached until SIGINT or SIGTERM. What
//! the hooks alone cost is the floor `cargo xtask bench` compares the
//! traced throughput with.
use anyhow::{Context as _, anyhow};
use aya::{Ebpf, programs::TracePoint};

use super::ATTACHMENTS;

/// Loads and attaches the empty programs; returns them (detached on drop).
pub fn attach() -> anyhow::Result<Ebpf> {
    let mut ebpf = Ebpf::load(aya::include_bytes_aligned!(concat!(
        env!("OUT_DIR"),
        "/tracer-floor"
    )))
    .context("loading the floor's kernel object")?;
    for (prog, category, name) in ATTACHMENTS {
        let program: &mut TracePoint = ebpf
            .program_mut(prog)
            .ok_or_else(|| anyhow!("program {prog} missing from the floor's object"))?
            .try_into()?;
        if program.fd().is_err() {
            program.load().with_context(|| format!("loading {prog}"))?;
        }
        program
            .attach(category, name)
            .with_context(|| format!("attaching {prog} to {category}:{name}"))?;
    }
    Ok(ebpf)
}

/// Attach, say `tracer: ready`, and wait for SIGINT or SIGTERM.
pub fn run() -> anyhow::Result<()> {
    // Blocked before attaching, then waited for: no runtime needed.
    // SAFETY: a signal set on the stack, initialised by sigemptyset.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    // The same host set-up as the agent's: on a fresh boot tracefs is not
    // mounted, and the floor would fail where the agent starts.
    super::environment::prepare()?;
    let _programs = attach()?;
    eprintln!(
        "tracer floor: {} tracepoints with empty programs",
        ATTACHMENTS.len()
    );
    eprintln!("tracer: ready");
    let mut signal = 0;
    // SAFETY: `set` is initialised; `signal` is written by sigwait.
    unsafe { libc::sigwait(&set, &mut signal) };
    eprintln!("tracer: stats: floor_signal={signal}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The floor object has a program for every attachment (loading it
    /// needs root and is done by the bench).
    #[test]
    fn the_floor_object_has_every_attached_program() {
        use object::{Object as _, ObjectSymbol as _};
        let bytes: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer-floor"));
        let file = object::File::parse(bytes).expect("the floor object parses");
        let names: Vec<&str> = file.symbols().filter_map(|s| s.name().ok()).collect();
        for (prog, ..) in ATTACHMENTS {
            assert!(names.contains(prog), "{prog} missing: {names:?}");
        }
    }
}
