//! What a traced process is, read once from /proc and kept while it lives.
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;

use crate::{golang, spans::record::ProcessKey};

pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
pub const OTEL_RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";

#[derive(Debug)]
pub struct ProcessInfo {
    pub key: ProcessKey,
    pub exe_path: Option<String>,
    pub exe_name: String,
    pub service_name: String,
    /// `service.instance.id`: `host:pid`, unique among the processes of
    /// one host while they live.
    pub instance_id: String,
    pub resource: Resource,
}

/// Details read from /proc/PID, before they become a resource.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ProcDetails {
    pub exe_path: Option<String>,
    pub comm: String,
    pub start_ticks: u64,
    pub env_service_name: Option<String>,
    /// Toolchain that built the executable (`go1.25.5`), when it is Go.
    pub go_version: Option<String>,
}

impl ProcDetails {
    pub fn read(proc_root: &Path, pid: u32) -> Self {
        let dir = proc_root.join(pid.to_string());
        let exe_path = std::fs::read_link(dir.join("exe"))
            .ok()
            .map(|p| strip_deleted(&p));
        let comm = std::fs::read_to_string(dir.join("comm"))
            .map(|c| c.trim_end().to_owned())
            .unwrap_or_default();
        let start_ticks = std::fs::read_to_string(dir.join("stat"))
            .ok()
            .and_then(|s| parse_start_ticks(&s))
            .unwrap_or(0);
        let env_service_name = std::fs::read(dir.join("environ"))
            .ok()
            .and_then(|e| service_name_from_environ(&e));
        // Through the exe link rather than exe_path: it opens the file the
        // process runs even after that was deleted or replaced on disk.
        // Costs the ELF headers and the small build info section only.
        let go_version = match golang::buildinfo::read(&dir.join("exe")) {
            Ok(info) => info.map(|i| i.go_version),
            Err(e) => {
                log::debug!("pid {pid}: no Go build info: {e}");
                None
            }
        };
        Self {
            exe_path,
            comm,
            start_ticks,
            env_service_name,
            go_version,
        }
    }
}

fn strip_deleted(p: &Path) -> String {
    let s = p.to_string_lossy();
    s.strip_suffix(" (deleted)").unwrap_or(&s).to_owned()
}

/// Field 22 of /proc/PID/stat; the command name (field 2) may hold spaces
/// and parentheses, so count from the last ')'.
pub fn parse_start_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Parent pid: field 4 of /proc/PID/stat.
pub fn parse_ppid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// OTEL_SERVICE_NAME, else service.name in OTEL_RESOURCE_ATTRIBUTES, from a
/// NUL-separated environment block.
pub fn service_name_from_environ(environ: &[u8]) -> Option<String> {
    let mut from_attrs = None;
    for var in environ.split(|&b| b == 0) {
        let var = String::from_utf8_lossy(var);
        let Some((k, v)) = var.split_once('=') else {
            continue;
        };
        if k == OTEL_SERVICE_NAME && !v.trim().is_empty() {
            return Some(v.trim().to_owned());
        }
        if k == OTEL_RESOURCE_ATTRIBUTES {
            from_attrs = v.split(',').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k.trim() == "service.name" && !v.trim().is_empty()).then(|| v.trim().to_owned())
            });
        }
    }
    from_attrs
}

impl ProcessInfo {
    pub fn new(pid: u32, details: ProcDetails, host_name: &str) -> Self {
        let exe_name = details
            .exe_path
            .as_deref()
            .and_then(|p| Path::new(p).file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| details.comm.clone());
        let service_name = details
            .env_service_name
            .clone()
            .unwrap_or_else(|| exe_name.clone());
        let instance_id = format!("{host_name}:{pid}");
        let mut attrs = vec![
            KeyValue::new("service.instance.id", instance_id.clone()),
            KeyValue::new("process.pid", i64::from(pid)),
            KeyValue::new("process.executable.name", exe_name.clone()),
            KeyValue::new("host.name", host_name.to_owned()),
            KeyValue::new("telemetry.sdk.name", "tracer"),
            KeyValue::new("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("telemetry.distro.name", "tracer"),
            KeyValue::new("telemetry.distro.version", env!("CARGO_PKG_VERSION")),
        ];
        if let Some(path) = &details.exe_path {
            attrs.push(KeyValue::new("process.executable.path", path.clone()));
        }
        if let Some(go_version) = &details.go_version {
            // Semantic conventions: name "go", version without the "go"
            // prefix, description the toolchain's own string. A suffix
            // (" X:experiment") or "devel ..." keeps only the description.
            attrs.push(KeyValue::new("process.runtime.name", "go"));
            if let Some(version) = go_version
                .split_whitespace()
                .next()
                .and_then(|v| v.strip_prefix("go"))
                .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))
            {
                attrs.push(KeyValue::new("process.runtime.version", version.to_owned()));
            }
            attrs.push(KeyValue::new(
                "process.runtime.description",
                go_version.clone(),
            ));
        }
        let resource = Resource::builder_empty()
            .with_service_name(service_name.clone())
            .with_attributes(attrs)
            .build();
        Self {
            key: ProcessKey {
                pid,
                start_ticks: details.start_ticks,
            },
            exe_path: details.exe_path,
            exe_name,
            service_name,
            instance_id,
            resource,
        }
    }
}

/// Cache of process details by pid.
pub struct ProcessTable {
    proc_root: PathBuf,
    host_name: String,
    by_pid: HashMap<u32, Arc<ProcessInfo>>,
}

impl ProcessTable {
    pub fn new(proc_root: PathBuf, host_name: String) -> Self {
        Self {
            proc_root,
            host_name,
            by_pid: HashMap::new(),
        }
    }

    pub fn get(&mut self, pid: u32) -> Arc<ProcessInfo> {
        if let Some(info) = self.by_pid.get(&pid) {
            return info.clone();
        }
        self.refresh(pid)
    }

    /// Read the process again (after exec it is a different program).
    pub fn refresh(&mut self, pid: u32) -> Arc<ProcessInfo> {
        self.refresh_with_comm(pid, "")
    }

    /// As `refresh`, with the kernel's command name to fall back on when the
    /// process is already gone from /proc.
    pub fn refresh_with_comm(&mut self, pid: u32, comm: &str) -> Arc<ProcessInfo> {
        let mut details = ProcDetails::read(&self.proc_root, pid);
        if details.comm.is_empty() {
            details.comm = comm.to_owned();
        }
        let info = Arc::new(ProcessInfo::new(pid, details, &self.host_name));
        self.by_pid.insert(pid, info.clone());
        info
    }

    /// What is known of `pid`, without reading /proc.
    pub fn peek(&self, pid: u32) -> Option<&Arc<ProcessInfo>> {
        self.by_pid.get(&pid)
    }

    pub fn remove(&mut self, pid: u32) -> Option<Arc<ProcessInfo>> {
        self.by_pid.remove(&pid)
    }
}

pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let stat = "1234 (my (odd) proc) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(parse_start_ticks(stat), Some(98765));
        assert_eq!(parse_ppid(stat), Some(1));
    }

    #[test]
    fn service_name_prefers_otel_service_name() {
        let env =
            b"A=1\0OTEL_RESOURCE_ATTRIBUTES=a=b,service.name=from-attrs\0OTEL_SERVICE_NAME=svc\0";
        assert_eq!(service_name_from_environ(env).as_deref(), Some("svc"));
        let env = b"OTEL_RESOURCE_ATTRIBUTES=a=b, service.name = x \0";
        assert_eq!(service_name_from_environ(env).as_deref(), Some("x"));
        assert_eq!(service_name_from_environ(b"OTEL_SERVICE_NAME=\0"), None);
    }

    #[test]
    fn resource_falls_back_to_the_executable_name() {
        let details = ProcDetails {
            exe_path: Some("/usr/bin/python3.11".into()),
            comm: "python3".into(),
            start_ticks: 5,
            env_service_name: None,
            go_version: None,
        };
        let info = ProcessInfo::new(42, details, "host");
        assert_eq!(info.service_name, "python3.11");
        assert_eq!(info.exe_name, "python3.11");
        assert_eq!(
            info.key,
            ProcessKey {
                pid: 42,
                start_ticks: 5
            }
        );
        let has = |k: &str| info.resource.iter().any(|(key, _)| key.as_str() == k);
        for k in [
            "service.name",
            "process.pid",
            "process.executable.path",
            "host.name",
        ] {
            assert!(has(k), "{k}");
        }
        assert!(!has("process.runtime.name"));
    }

    #[test]
    fn go_binaries_get_runtime_attributes() {
        let attr = |go_version: &str, key: &'static str| {
            let details = ProcDetails {
                exe_path: Some("/srv/app".into()),
                go_version: Some(go_version.into()),
                ..ProcDetails::default()
            };
            let info = ProcessInfo::new(7, details, "host");
            info.resource
                .get(&opentelemetry::Key::from_static_str(key))
                .map(|v| v.to_string())
        };
        assert_eq!(
            attr("go1.25.5", "process.runtime.name").as_deref(),
            Some("go")
        );
        assert_eq!(
            attr("go1.25.5", "process.runtime.version").as_deref(),
            Some("1.25.5")
        );
        assert_eq!(
            attr("go1.25.5", "process.runtime.description").as_deref(),
            Some("go1.25.5")
        );
        assert_eq!(
            attr("go1.24.0 X:nocoverageredesign", "process.runtime.version").as_deref(),
            Some("1.24.0")
        );
        assert_eq!(attr("unknown", "process.runtime.version"), None);
        assert_eq!(
            attr("unknown", "process.runtime.name").as_deref(),
            Some("go")
        );
    }

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        let d = ProcDetails::read(Path::new("/proc"), me);
        assert!(d.exe_path.is_some());
        assert!(d.start_ticks > 0);
    }
}
