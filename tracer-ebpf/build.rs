use which::which;

/// Rebuild the kernel object when bpf-linker changes (it is a linker, so cargo
/// does not track it on its own).
fn main() {
    let bpf_linker = which("bpf-linker").expect("bpf-linker not found: run `cargo xtask setup`");
    println!(
        "cargo:rerun-if-changed={}",
        bpf_linker.to_str().expect("utf-8 path")
    );
}
