//! What the agent needs from the host before it loads anything: privileges,
//! tracefs and bpffs mounted, kernel BTF, an unlimited memlock. Each missing
//! piece is reported in plain words instead of as a verifier dump.
use std::{fs, path::Path};

use anyhow::{Context as _, bail};
use log::{debug, info, warn};

const TRACEFS: &str = "/sys/kernel/tracing";
const BPFFS: &str = "/sys/fs/bpf";

/// Check privileges and mount what is missing.
pub fn prepare() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "the agent must run as root (it loads eBPF programs and reads other processes' /proc entries)"
        );
    }
    raise_memlock();
    if !Path::new(super::kernel_offsets::VMLINUX_BTF).exists() {
        bail!(
            "the kernel has no BTF ({}): it is needed to find kernel struct offsets; \
             use a kernel built with CONFIG_DEBUG_INFO_BTF=y",
            super::kernel_offsets::VMLINUX_BTF
        );
    }
    mount_if_missing("tracefs", TRACEFS, &format!("{TRACEFS}/events"))?;
    if let Err(e) = mount_if_missing("bpf", BPFFS, BPFFS) {
        // Nothing is pinned yet, so bpffs is a convenience, not a need.
        warn!("{e:#}");
    }
    report_optional_features();
    Ok(())
}

fn mount_if_missing(fstype: &str, target: &str, probe: &str) -> anyhow::Result<()> {
    if is_mounted(target) && Path::new(probe).exists() {
        return Ok(());
    }
    fs::create_dir_all(target).ok();
    let c = |s: &str| std::ffi::CString::new(s).expect("no NUL");
    let (src, tgt, ty) = (c(fstype), c(target), c(fstype));
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), ty.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        bail!("{fstype} is not mounted at {target} and mounting it failed: {err}");
    }
    info!("mounted {fstype} at {target}");
    Ok(())
}

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup` on most
/// systems, `/sys/fs/cgroup/unified` on hybrid ones).
pub fn cgroup2_root() -> Option<std::path::PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut f = l.split(' ');
        let (_, target, fstype) = (f.next()?, f.next()?, f.next()?);
        (fstype == "cgroup2").then(|| target.into())
    })
}

fn is_mounted(target: &str) -> bool {
    fs::read_to_string("/proc/self/mounts")
        .map(|m| m.lines().any(|l| l.split(' ').nth(1) == Some(target)))
        .unwrap_or(false)
}

fn raise_memlock() {
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a valid rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) } != 0 {
        // Kernels since 5.11 account BPF memory to cgroups instead: only
        // older ones need the limit raised.
        let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        if kernel_before(&release, (5, 11)) {
            warn!("could not raise RLIMIT_MEMLOCK: loading may fail on this kernel ({release})");
        } else {
            debug!("could not raise RLIMIT_MEMLOCK; not needed on kernels >= 5.11");
        }
    }
}

/// Whether a kernel release string (`6.18.44-fc`) is older than `want`;
/// an unreadable one counts as older (the cautious answer).
fn kernel_before(release: &str, want: (u32, u32)) -> bool {
    let mut parts = release.trim().split(['.', '-']);
    let major = parts.next().and_then(|p| p.parse::<u32>().ok());
    let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
    match (major, minor) {
        (Some(major), Some(minor)) => (major, minor) < want,
        _ => true,
    }
}

/// Say which optional kernel features exist: nothing depends on them.
fn report_optional_features() {
    let kprobes = Path::new(TRACEFS).join("kprobe_events").exists();
    info!(
        "kprobes {}: not used (syscall tracepoints are the supported path)",
        if kprobes { "available" } else { "absent" }
    );
}

/// Offset of a field in a tracepoint's record, from its tracefs format file.
pub fn tracepoint_field_offset(category: &str, name: &str, field: &str) -> anyhow::Result<u32> {
    let path = format!("{TRACEFS}/events/{category}/{name}/format");
    let format = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_field_offset(&format, field).with_context(|| format!("no field {field} in {path}"))
}

fn parse_field_offset(format: &str, field: &str) -> Option<u32> {
    format.lines().find_map(|line| {
        let mut parts = line.trim().split(';');
        let decl = parts.next()?.strip_prefix("field:")?;
        let name = decl.rsplit([' ', '*']).next()?;
        if name != field {
            return None;
        }
        let offset = parts.next()?.trim().strip_prefix("offset:")?;
        offset.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::{kernel_before, parse_field_offset};

    #[test]
    fn compares_kernel_releases() {
        assert!(!kernel_before("6.18.44-fc-v1272\n", (5, 11)));
        assert!(!kernel_before("5.11.0", (5, 11)));
        assert!(kernel_before("5.10.200-generic", (5, 11)));
        assert!(kernel_before("4.19.0", (5, 11)));
        assert!(kernel_before("garbage", (5, 11)));
    }

    #[test]
    fn finds_field_offset_in_format_file() {
        let format = "name: sched_process_fork\nformat:\n\
            \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
            \tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;\n\
            \tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;\n\
            \tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;\n";
        assert_eq!(parse_field_offset(format, "child_pid"), Some(20));
        assert_eq!(parse_field_offset(format, "parent_pid"), Some(12));
        assert_eq!(parse_field_offset(format, "nope"), None);
    }
}
