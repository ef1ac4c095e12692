//! Which processes the user selected (--pid, --exe): decided here, enforced
//! in the kernel through the TRACED_PIDS map. The kernel selects the children
//! of selected processes by itself (sched_process_fork); execs are matched
//! against --exe as they are reported.
use std::{collections::HashSet, path::Path};

use super::info::parse_ppid;

#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub pids: Vec<u32>,
    /// File names (`nginx`) or full paths (`/usr/sbin/nginx`).
    pub exes: Vec<String>,
}

impl Selection {
    /// Whether an executable at `exe_path` is selected by --exe.
    pub fn exe_matches(&self, exe_path: &str) -> bool {
        let name = Path::new(exe_path)
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        self.exes.iter().any(|want| {
            if want.contains('/') {
                want == exe_path
            } else {
                *want == name
            }
        })
    }

    /// Processes selected now: the --pid ones and their descendants, and the
    /// ones running a selected executable.
    pub fn scan(&self, proc_root: &Path) -> Vec<u32> {
        let mut chosen: HashSet<u32> = HashSet::new();
        let mut parents: Vec<(u32, u32)> = Vec::new();
        let Ok(dir) = std::fs::read_dir(proc_root) else {
            return self.pids.clone();
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(ppid) = std::fs::read_to_string(entry.path().join("stat"))
                .ok()
                .and_then(|s| parse_ppid(&s))
            {
                parents.push((pid, ppid));
            }
            // Only the executable's path: ProcDetails would also read its
            // build info, for every process on the host.
            if !self.exes.is_empty()
                && let Ok(exe) = std::fs::read_link(entry.path().join("exe"))
                && let exe = exe.to_string_lossy()
                && self.exe_matches(exe.strip_suffix(" (deleted)").unwrap_or(&exe))
            {
                chosen.insert(pid);
            }
        }
        chosen.extend(&self.pids);
        // Descendants of --pid processes (e.g. the workers of an nginx master).
        let mut frontier: Vec<u32> = self.pids.clone();
        while let Some(parent) = frontier.pop() {
            for &(pid, ppid) in &parents {
                if ppid == parent && chosen.insert(pid) {
                    frontier.push(pid);
                }
            }
        }
        let mut out: Vec<u32> = chosen.into_iter().collect();
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_names_and_full_paths() {
        let s = Selection {
            pids: vec![],
            exes: vec!["nginx".into(), "/usr/bin/curl".into()],
        };
        assert!(s.exe_matches("/usr/sbin/nginx"));
        assert!(s.exe_matches("/usr/bin/curl"));
        assert!(!s.exe_matches("/usr/local/bin/curl"));
        assert!(!s.exe_matches("/usr/sbin/nginx-debug"));
    }

    #[test]
    fn scan_finds_own_process_by_pid_and_exe() {
        let me = std::process::id();
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let s = Selection {
            pids: vec![],
            exes: vec![exe.to_string_lossy().into_owned()],
        };
        assert!(s.scan(Path::new("/proc")).contains(&me));
        let s = Selection {
            pids: vec![1],
            exes: vec![],
        };
        let found = s.scan(Path::new("/proc"));
        assert!(found.contains(&1));
        assert!(found.contains(&me), "every process descends from pid 1");
    }
}
