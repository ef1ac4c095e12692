//! `http.route` from a Go server's own router: the ServeMux pattern that
//! matched a request (`Request.Pattern`, Go 1.23+), for the HTTP/2 streams
//! whose handler the server handler probe saw start.
//!
//! The probe runs before ServeMux has matched the request, so it only
//! hands over the request's address; the pattern is read from the
//! process's memory when the stream ends. By then the request may have been
//! freed and its memory reused: the pattern is only taken when the request
//! there still has the stream's method and path, so that a reused slot can
//! at worst give the pattern of a request with the same method and path,
//! which ServeMux matches the same way.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

/// Where a process's `*http.Request` keeps what is read (offsets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLayout {
    pub method: u32,
    pub url: u32,
    /// `url.URL.Path`.
    pub url_path: u32,
    pub pattern: u32,
}

/// Longest method, path and pattern read.
const MAX_METHOD: u64 = 32;
const MAX_TEXT: u64 = 1024;

/// The layouts of the processes that have the server handler probe, shared
/// by the Go thread (which registers them) and the pipeline (which reads).
#[derive(Clone, Default)]
pub struct Patterns {
    layouts: Arc<Mutex<HashMap<u32, RequestLayout>>>,
}

impl Patterns {
    pub fn set(&self, pid: u32, layout: RequestLayout) {
        self.lock().insert(pid, layout);
    }

    pub fn remove(&self, pid: u32) {
        self.lock().remove(&pid);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, RequestLayout>> {
        self.layouts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The route of the request at `request` in process `pid`, served as
    /// `method` `path` (query excluded); `None` when the process has no
    /// layout, the request there is another one, or memory cannot be read.
    pub fn route(&self, pid: u32, request: u64, method: &str, path: &str) -> Option<String> {
        let layout = *self.lock().get(&pid)?;
        let mem = Memory { pid };
        let (m, url, pattern) = (
            mem.string_at(request + u64::from(layout.method), MAX_METHOD)?,
            mem.word(request + u64::from(layout.url))?,
            mem.string_at(request + u64::from(layout.pattern), MAX_TEXT)?,
        );
        if url == 0 || m != method.as_bytes() {
            return None;
        }
        let p = mem.string_at(url + u64::from(layout.url_path), MAX_TEXT)?;
        if p != path.as_bytes() {
            return None;
        }
        let pattern = String::from_utf8(pattern).ok()?;
        route_of(&pattern).map(str::to_owned)
    }
}

/// The path part of a ServeMux pattern, `[METHOD ][HOST]/[PATH]`: `GET
/// example.com/users/{id}` → `/users/{id}`; `/{$}` (the root only) → `/`.
/// `None` for no pattern (not served by a ServeMux, or before Go 1.23).
pub fn route_of(pattern: &str) -> Option<&str> {
    let rest = match pattern.split_once(' ') {
        Some((method, rest)) if method.bytes().all(|b| b.is_ascii_uppercase()) => rest.trim(),
        _ => pattern,
    };
    let path = &rest[rest.find('/')?..];
    Some(path.strip_suffix("{$}").unwrap_or(path))
}

/// Another process's memory, read with process_vm_readv.
struct Memory {
    pid: u32,
}

impl Memory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Option<()> {
        if buf.is_empty() {
            return Some(());
        }
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: `local` is `buf`, writable for its length; the remote
        // address is only read by the kernel, which checks it.
        let n = unsafe { libc::process_vm_readv(self.pid as i32, &local, 1, &remote, 1, 0) };
        (n == buf.len() as isize).then_some(())
    }

    fn word(&self, addr: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Some(u64::from_le_bytes(b))
    }

    /// The Go string (data pointer, length) at `addr`, if at most `max`
    /// bytes.
    fn string_at(&self, addr: u64, max: u64) -> Option<Vec<u8>> {
        let (data, len) = (self.word(addr)?, self.word(addr + 8)?);
        if len > max || (data == 0 && len != 0) {
            return None;
        }
        let mut text = vec![0u8; len as usize];
        self.read(data, &mut text)?;
        Some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_is_the_path_of_the_pattern() {
        assert_eq!(route_of("/users/{id}"), Some("/users/{id}"));
        assert_eq!(route_of("GET /users/{id}"), Some("/users/{id}"));
        assert_eq!(route_of("POST example.com/items/"), Some("/items/"));
        assert_eq!(route_of("example.com/"), Some("/"));
        assert_eq!(route_of("/{$}"), Some("/"));
        assert_eq!(route_of("GET /files/{path...}"), Some("/files/{path...}"));
        assert_eq!(route_of("/a/{$}"), Some("/a/"));
        assert_eq!(route_of(""), None);
        assert_eq!(route_of("GET"), None);
    }

    #[test]
    fn reads_a_request_in_this_process() {
        // A request laid out as Go would: method, URL pointer, pattern; the
        // URL with its path.
        #[repr(C)]
        struct GoString(*const u8, usize);
        #[repr(C)]
        struct Url {
            _scheme: GoString,
            path: GoString,
        }
        #[repr(C)]
        struct Request {
            method: GoString,
            url: *const Url,
            pattern: GoString,
        }
        let go = |s: &'static str| GoString(s.as_ptr(), s.len());
        let url = Url {
            _scheme: go("http"),
            path: go("/users/7"),
        };
        let req = Request {
            method: go("GET"),
            url: &url,
            pattern: go("GET /users/{id}"),
        };
        let patterns = Patterns::default();
        let pid = std::process::id();
        let at = &req as *const Request as u64;
        assert_eq!(
            patterns.route(pid, at, "GET", "/users/7"),
            None,
            "no layout"
        );
        patterns.set(
            pid,
            RequestLayout {
                method: 0,
                url: 16,
                url_path: 16,
                pattern: 24,
            },
        );
        assert_eq!(
            patterns.route(pid, at, "GET", "/users/7").as_deref(),
            Some("/users/{id}")
        );
        // Another request in that memory by now: not its pattern.
        assert_eq!(patterns.route(pid, at, "GET", "/users/8"), None);
        assert_eq!(patterns.route(pid, at, "POST", "/users/7"), None);
        assert_eq!(
            patterns.route(pid, 8, "GET", "/users/7"),
            None,
            "bad address"
        );
        patterns.remove(pid);
        assert_eq!(patterns.route(pid, at, "GET", "/users/7"), None);
    }
}
