//! Low-cardinality route templates from concrete paths: ids become `{id}` so
//! that `/users/42` and `/users/43` share one span name.
use std::{cell::RefCell, sync::Arc};

use super::bounded::Bounded;

/// `/users/42/orders/9f1c…` → `/users/{id}/orders/{id}`. The query string and
/// fragment are dropped; empty paths become `/`.
pub fn template(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    template_into(path, &mut out);
    out
}

/// `path` and its route, from a bounded table of the paths already
/// templated: a server's paths repeat from request to request, and the span
/// and the metrics of each exchange both need the route. Path and route are
/// one string when the path templates to itself. The table is cleared when
/// full; paths longer than [`CACHED_PATH_MAX`] are templated every time.
pub fn cached(path: &str) -> (Arc<str>, Arc<str>) {
    let make = |path: &str| {
        OUT.with_borrow_mut(|out| {
            template_into(path, out);
            let path: Arc<str> = path.into();
            let route = if out.as_str() == &*path {
                path.clone()
            } else {
                Arc::from(out.as_str())
            };
            (path, route)
        })
    };
    if path.len() > CACHED_PATH_MAX {
        return make(path);
    }
    ROUTES.with_borrow_mut(|routes| routes.get_or_insert(path, || make(path)))
}

/// The route of `path` into `out` (cleared first), from the table of
/// [`cached`] when the path is there, else templated. It never allocates
/// beyond `out`'s growth: recording metrics into existing series must not.
pub fn cached_into(path: &str, out: &mut String) {
    let found = ROUTES.with_borrow(|routes| {
        routes.get(path).map(|route| {
            out.clear();
            out.push_str(route);
        })
    });
    if found.is_none() {
        template_into(path, out);
    }
}

/// Longest path kept in the table of [`cached`].
pub const CACHED_PATH_MAX: usize = 256;
/// Most paths in that table.
const CACHED_PATHS: usize = 4096;

thread_local! {
    static ROUTES: RefCell<Bounded<Arc<str>, Arc<str>>> = RefCell::new(Bounded::new(CACHED_PATHS));
    static OUT: RefCell<String> = RefCell::default();
}

/// [`template`] into `out` (cleared first), so a caller that keeps `out`
/// templates without allocating.
pub fn template_into(path: &str, out: &mut String) {
    out.clear();
    let path = path.split(['?', '#']).next().unwrap_or("");
    if path.is_empty() || path == "*" {
        out.push_str(if path.is_empty() { "/" } else { "*" });
        return;
    }
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if is_id(segment) {
            out.push_str("{id}");
        } else {
            out.push_str(segment);
        }
    }
}

fn is_id(segment: &str) -> bool {
    if segment.is_empty() {
        return false;
    }
    let bytes = segment.as_bytes();
    // Plain numbers, including negative and with separators like 1_000.
    if bytes.iter().all(|b| b.is_ascii_digit()) {
        return true;
    }
    if is_uuid(bytes) {
        return true;
    }
    // Long hex strings: hashes, object ids, trace ids.
    if bytes.len() >= 16 && bytes.iter().all(u8::is_ascii_hexdigit) {
        return true;
    }
    // Mostly-digit tokens such as "v2" stay, but "12ab34cd" style ids with
    // many digits go: at least 8 chars and more than half of them digits.
    let digits = bytes.iter().filter(|b| b.is_ascii_digit()).count();
    bytes.len() >= 8 && digits * 2 > bytes.len() && bytes.iter().all(u8::is_ascii_alphanumeric)
}

fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{CACHED_PATH_MAX, cached, cached_into, template};

    #[test]
    fn cached_routes_are_the_templates() {
        for path in [
            "/users/42/orders/7",
            "/hello",
            "",
            "/a/b",
            "/users/43/orders/8",
        ] {
            for _ in 0..2 {
                let (p, r) = cached(path);
                assert_eq!(&*p, path);
                assert_eq!(&*r, template(path));
                let mut out = String::from("stale");
                cached_into(path, &mut out);
                assert_eq!(out, template(path));
            }
        }
        let (p, r) = cached("/hello");
        assert!(
            Arc::ptr_eq(&p, &r),
            "a path that is its own route is one string"
        );
        assert!(Arc::ptr_eq(&p, &cached("/hello").0), "kept");
        let long = format!("/{}", "x".repeat(CACHED_PATH_MAX));
        assert!(
            !Arc::ptr_eq(&cached(&long).0, &cached(&long).0),
            "long paths are not kept"
        );
        assert_eq!(&*cached(&long).1, template(&long));
        // Past the bound the table starts over; routes stay right.
        for i in 0..10_000 {
            let path = format!("/item/{i}/x{}", i % 7);
            assert_eq!(&*cached(&path).1, template(&path));
        }
    }

    #[test]
    fn replaces_ids() {
        for (path, want) in [
            ("/users/42", "/users/{id}"),
            ("/users/42/orders/7?x=1", "/users/{id}/orders/{id}"),
            ("/items/123e4567-e89b-12d3-a456-426614174000", "/items/{id}"),
            ("/blobs/0123456789abcdef0123", "/blobs/{id}"),
            ("/api/v2/hello", "/api/v2/hello"),
            ("/", "/"),
            ("", "/"),
            ("*", "*"),
            ("/hello/", "/hello/"),
            ("/orders/ab12345678", "/orders/{id}"),
            ("/static/app.js", "/static/app.js"),
        ] {
            assert_eq!(template(path), want, "{path}");
        }
    }
}
