//! Low-cardinality route templates from concrete paths: ids become `{id}` so
//! that `/users/42` and `/users/43` share one span name.

/// `/users/42/orders/9f1c…` → `/users/{id}/orders/{id}`. The query string and
/// fragment are dropped; empty paths become `/`.
pub fn template(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    template_into(path, &mut out);
    out
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
    use super::template;

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
