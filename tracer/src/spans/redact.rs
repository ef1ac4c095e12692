//! Credentials never leave the agent: query parameters that look like secrets
//! are replaced by `REDACTED` when query strings are exported at all.

const SECRET_PARAMS: &[&str] = &[
    "access_token",
    "api_key",
    "apikey",
    "auth",
    "authorization",
    "client_secret",
    "code",
    "key",
    "password",
    "passwd",
    "pwd",
    "secret",
    "session",
    "sessionid",
    "sig",
    "signature",
    "token",
    "x-amz-credential",
    "x-amz-security-token",
    "x-amz-signature",
    "x-goog-signature",
];

pub const REDACTED: &str = "REDACTED";

/// The query string with the values of secret-looking parameters replaced.
pub fn query(q: &str) -> String {
    q.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret(k) => format!("{k}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn is_secret(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_PARAMS.contains(&lower.as_str())
        || lower.ends_with("_token")
        || lower.ends_with("password")
        || lower.ends_with("secret")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secret_values_only() {
        assert_eq!(
            query("a=1&token=abc&X-Amz-Signature=zz&page=2&db_password=p"),
            "a=1&token=REDACTED&X-Amz-Signature=REDACTED&page=2&db_password=REDACTED"
        );
        assert_eq!(query("flag&x="), "flag&x=");
    }
}
