//! From a file descriptor of the current process to the TCP socket behind it,
//! by walking task->files->fdt->fd[fd]->private_data->sk with offsets the
//! agent read from BTF. Results are cached in SOCKS per (tgid, fd).
use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel};
use tracer_common::{Config, ConnTuple, KernelOffsets, SockInfo, counter, role};

use crate::maps::{SOCKS, TRACED_PORTS, count};

const S_IFMT: u16 = 0o170000;
const S_IFSOCK: u16 = 0o140000;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const SOCK_STREAM: u16 = 1;
const IPPROTO_TCP: u16 = 6;

#[inline(always)]
fn read<T>(base: u64, offset: u32) -> Option<T> {
    // SAFETY: bpf_probe_read_kernel checks the address; a bad one is an error.
    match unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T) } {
        Ok(v) => Some(v),
        Err(_) => {
            count(counter::READ_FAILED, 1);
            None
        }
    }
}

pub fn sock_key(tgid: u32, fd: u32) -> u64 {
    ((tgid as u64) << 32) | fd as u64
}

/// The `struct sock *` behind `fd` if it is a socket file, else 0.
#[inline(always)]
fn sock_of_fd(off: &KernelOffsets, fd: u32) -> Option<u64> {
    // SAFETY: returns the current task pointer, only used through probe reads.
    let task = unsafe { bpf_get_current_task() };
    let files: u64 = read(task, off.task_files)?;
    let fdt: u64 = read(files, off.files_fdt)?;
    let max_fds: u32 = read(fdt, off.fdt_max_fds)?;
    if fd >= max_fds {
        return None;
    }
    let fd_array: u64 = read(fdt, off.fdt_fd)?;
    let file: u64 = read(fd_array, fd * 8)?;
    if file == 0 {
        return None;
    }
    let inode: u64 = read(file, off.file_inode)?;
    let mode: u16 = read(inode, off.inode_mode)?;
    if mode & S_IFMT != S_IFSOCK {
        return Some(0);
    }
    let socket: u64 = read(file, off.file_private_data)?;
    read(socket, off.socket_sk)
}

/// Fill `info` from the `struct sock` at `sk`; false if it is not TCP.
#[inline(always)]
fn describe(off: &KernelOffsets, sk: u64, info: &mut SockInfo) -> Option<bool> {
    let family: u16 = read(sk, off.skc_family)?;
    if family != AF_INET && family != AF_INET6 {
        return Some(false);
    }
    let sk_type: u16 = read(sk, off.sk_type)?;
    let protocol: u16 = read(sk, off.sk_protocol)?;
    if sk_type != SOCK_STREAM || protocol != IPPROTO_TCP {
        return Some(false);
    }
    let mut tuple = ConnTuple {
        family,
        local_port: read(sk, off.skc_num)?,
        remote_port: u16::from_be(read(sk, off.skc_dport)?),
        ..ConnTuple::default()
    };
    if family == AF_INET {
        let l: [u8; 4] = read(sk, off.skc_rcv_saddr)?;
        let r: [u8; 4] = read(sk, off.skc_daddr)?;
        tuple.local_addr[..4].copy_from_slice(&l);
        tuple.remote_addr[..4].copy_from_slice(&r);
    } else {
        tuple.local_addr = read(sk, off.skc_v6_rcv_saddr)?;
        tuple.remote_addr = read(sk, off.skc_v6_daddr)?;
    }
    info.sock_id = sk;
    info.tuple = tuple;
    info.is_tcp = 1;
    Some(true)
}

#[inline(always)]
fn port_selected(cfg: &Config, tuple: &ConnTuple) -> u8 {
    if cfg.select_ports == 0 {
        return 0;
    }
    // SAFETY: values are only tested for presence.
    let hit = unsafe {
        TRACED_PORTS.get(tuple.local_port).is_some()
            || TRACED_PORTS.get(tuple.remote_port).is_some()
    };
    hit as u8
}

/// Resolve `fd` now (after accept/connect, or on first use) and cache it.
#[inline(always)]
pub fn resolve(cfg: &Config, tgid: u32, fd: u32, how: u8) -> Option<&'static SockInfo> {
    let mut info = SockInfo {
        role: how,
        ..SockInfo::default()
    };
    let sk = sock_of_fd(&cfg.offsets, fd)?;
    if sk != 0 && describe(&cfg.offsets, sk, &mut info)? {
        info.port_selected = port_selected(cfg, &info.tuple);
    }
    let key = sock_key(tgid, fd);
    let _ = SOCKS.insert(key, info, 0);
    // SAFETY: map values stay valid for the rest of this program run.
    unsafe { SOCKS.get(key) }
}

/// The cached description of `fd`, resolving it on first use. A cached entry
/// for a socket that is not yet connected is refreshed.
#[inline(always)]
pub fn lookup(cfg: &Config, tgid: u32, fd: u32) -> Option<&'static SockInfo> {
    // SAFETY: map values stay valid for the rest of this program run.
    let how = match unsafe { SOCKS.get(sock_key(tgid, fd)) } {
        Some(info) if info.is_tcp == 0 || info.tuple.remote_port != 0 => return Some(info),
        Some(info) => info.role,
        None => role::UNKNOWN,
    };
    resolve(cfg, tgid, fd, how)
}
