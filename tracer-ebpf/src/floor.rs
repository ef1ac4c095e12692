//! The floor of the agent's overhead: a program that returns at once on
//! every tracepoint the agent attaches (the same names, so the agent's
//! attach table serves both), loaded by `tracer floor` for `cargo xtask
//! bench` to measure what the hooks alone cost.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod programs {
    use aya_ebpf::{macros::tracepoint, programs::TracePointContext};

    macro_rules! empty {
        ($($name:ident),+ $(,)?) => {$(
            #[tracepoint]
            pub fn $name(_ctx: TracePointContext) -> u32 {
                0
            }
        )+};
    }

    empty!(
        enter_write,
        enter_readv,
        enter_writev,
        enter_recvmsg,
        enter_sendmsg,
        enter_sendfile,
        enter_connect,
        enter_accept,
        enter_close,
        exit_io,
        exit_read,
        sched_fork,
        sched_exec,
        sched_exit,
    );
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

#[cfg(not(target_arch = "bpf"))]
fn main() {}
