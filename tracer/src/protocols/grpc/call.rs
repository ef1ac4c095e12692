//! A gRPC call's identity from its request headers.

/// `application/grpc`, optionally followed by `+format` or parameters
/// (`application/grpc+proto`, `application/grpc; charset=...`).
#[must_use]
pub fn is_grpc(content_type: &str) -> bool {
    const GRPC: &str = "application/grpc";
    let ct = content_type.trim();
    ct.len() >= GRPC.len()
        && ct.as_bytes()[..GRPC.len()].eq_ignore_ascii_case(GRPC.as_bytes())
        && matches!(ct.as_bytes().get(GRPC.len()), None | Some(b'+' | b';'))
}

/// The service and method a gRPC `:path` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodName<'a> {
    /// Fully qualified: `pkg.Service`.
    pub service: &'a str,
    pub method: &'a str,
}

/// `/pkg.Service/Method` → (`pkg.Service`, `Method`); `None` for anything
/// else.
#[must_use]
pub fn parse_path(path: &str) -> Option<MethodName<'_>> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let ok = |s: &str| !s.is_empty() && !s.contains(['/', '?', '#']);
    (ok(service) && ok(method)).then_some(MethodName { service, method })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        for ct in [
            "application/grpc",
            "application/grpc+proto",
            "Application/GRPC+json",
            "application/grpc; charset=utf-8",
        ] {
            assert!(is_grpc(ct), "{ct}");
        }
        for ct in [
            "application/grpcx",
            "application/json",
            "",
            "application/grp",
        ] {
            assert!(!is_grpc(ct), "{ct}");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(
            parse_path("/grpc.health.v1.Health/Check"),
            Some(MethodName {
                service: "grpc.health.v1.Health",
                method: "Check"
            })
        );
        for p in ["", "/", "/a", "/a/", "//m", "/a/b/c", "a/b", "/a/b?x"] {
            assert_eq!(parse_path(p), None, "{p}");
        }
    }
}
