//! Offsets of the kernel struct fields the programs read, taken from the
//! running kernel's BTF: Rust eBPF has no CO-RE relocations, so the agent
//! does the relocation itself and hands the numbers over in CONFIG.
use btf_rs::{Btf, BtfType, Type};
use tracer_common::KernelOffsets;

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub enum OffsetError {
    #[error("cannot read kernel BTF at {VMLINUX_BTF}: {0}")]
    Btf(String),
    #[error("kernel BTF has no struct {0}")]
    NoStruct(String),
    #[error("kernel BTF: struct {structure} has no field {field}")]
    NoField { structure: String, field: String },
}

pub fn read() -> Result<KernelOffsets, OffsetError> {
    let btf = Btf::from_file(VMLINUX_BTF).map_err(|e| OffsetError::Btf(e.to_string()))?;
    let o = |s: &str, path: &[&str]| offset_of(&btf, s, path);
    Ok(KernelOffsets {
        task_files: o("task_struct", &["files"])?,
        files_fdt: o("files_struct", &["fdt"])?,
        fdt_max_fds: o("fdtable", &["max_fds"])?,
        fdt_fd: o("fdtable", &["fd"])?,
        file_inode: o("file", &["f_inode"])?,
        file_private_data: o("file", &["private_data"])?,
        inode_mode: o("inode", &["i_mode"])?,
        socket_sk: o("socket", &["sk"])?,
        skc_daddr: o("sock", &["__sk_common", "skc_daddr"])?,
        skc_rcv_saddr: o("sock", &["__sk_common", "skc_rcv_saddr"])?,
        skc_dport: o("sock", &["__sk_common", "skc_dport"])?,
        skc_num: o("sock", &["__sk_common", "skc_num"])?,
        skc_family: o("sock", &["__sk_common", "skc_family"])?,
        skc_v6_daddr: o("sock", &["__sk_common", "skc_v6_daddr"])?,
        skc_v6_rcv_saddr: o("sock", &["__sk_common", "skc_v6_rcv_saddr"])?,
        sk_type: o("sock", &["sk_type"])?,
        sk_protocol: o("sock", &["sk_protocol"])?,
        task_fsbase: o("task_struct", &["thread", "fsbase"])?,
    })
}

/// Byte offset of `path` (a chain of field names, each looked up through
/// anonymous structs and unions) inside `struct structure`.
fn offset_of(btf: &Btf, structure: &str, path: &[&str]) -> Result<u32, OffsetError> {
    let no_struct = || OffsetError::NoStruct(structure.to_owned());
    let mut current = btf
        .resolve_types_by_name(structure)
        .map_err(|_| no_struct())?
        .into_iter()
        .find(|t| matches!(t, Type::Struct(_)))
        .ok_or_else(no_struct)?;
    let mut bits = 0u32;
    for field in path {
        let (offset, ty) =
            find_member(btf, &current, field).ok_or_else(|| OffsetError::NoField {
                structure: structure.to_owned(),
                field: path.join("."),
            })?;
        bits += offset;
        current = ty;
    }
    Ok(bits / 8)
}

/// (bit offset, resolved type) of the member `name` of a struct or union,
/// descending into anonymous members.
fn find_member(btf: &Btf, ty: &Type, name: &str) -> Option<(u32, Type)> {
    let members = match ty {
        Type::Struct(s) | Type::Union(s) => &s.members,
        _ => return None,
    };
    for m in members {
        let member_name = btf.resolve_name(m).unwrap_or_default();
        let member_ty = strip(btf, btf.resolve_type_by_id(m.get_type_id().ok()?).ok()?);
        if member_name == name {
            return Some((m.bit_offset(), member_ty));
        }
        if member_name.is_empty()
            && let Some((inner, found)) = find_member(btf, &member_ty, name)
        {
            return Some((m.bit_offset() + inner, found));
        }
    }
    None
}

/// Follow typedefs and qualifiers to the underlying type.
fn strip(btf: &Btf, mut ty: Type) -> Type {
    for _ in 0..16 {
        match &ty {
            Type::Typedef(_) | Type::Const(_) | Type::Volatile(_) | Type::Restrict(_) => {
                match ty
                    .as_btf_type()
                    .and_then(|t| btf.resolve_chained_type(t).ok())
                {
                    Some(next) => ty = next,
                    None => return ty,
                }
            }
            _ => return ty,
        }
    }
    ty
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_offsets_of_running_kernel() {
        if !std::path::Path::new(VMLINUX_BTF).exists() {
            eprintln!("SKIPPED reads_offsets_of_running_kernel: no {VMLINUX_BTF}");
            return;
        }
        let o = read().expect("offsets");
        // sock_common starts struct sock; skc_daddr is its first field.
        assert_eq!(o.skc_daddr, 0);
        assert_eq!(o.skc_rcv_saddr, 4);
        assert!(o.skc_dport > 0 && o.skc_num == o.skc_dport + 2);
        assert!(o.sk_protocol > o.skc_v6_rcv_saddr);
        assert!(o.task_files > 0 && o.file_private_data > 0);
    }
}
