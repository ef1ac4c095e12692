//! The attribute set of one metric series: what an observation is keyed by.
//! [`Attrs`] borrows from the exchange, so finding an existing series
//! copies nothing; [`OwnedAttrs`] is kept once per series.
use std::{
    hash::{BuildHasher, Hash, Hasher},
    net::IpAddr,
};

use crate::spans::http::ServerAddress;

/// The instruments observed per request (semantic-convention names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Instrument {
    HttpServer,
    HttpClient,
    RpcServer,
    RpcClient,
}

impl Instrument {
    pub const ALL: [Self; 4] = [
        Self::HttpServer,
        Self::HttpClient,
        Self::RpcServer,
        Self::RpcClient,
    ];

    /// The duration histogram's name.
    pub const fn duration_name(self) -> &'static str {
        match self {
            Self::HttpServer => "http.server.request.duration",
            Self::HttpClient => "http.client.request.duration",
            Self::RpcServer => "rpc.server.call.duration",
            Self::RpcClient => "rpc.client.call.duration",
        }
    }

    /// The (request, response) body-size histograms' names; HTTP only.
    pub const fn size_names(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::HttpServer => Some((
                "http.server.request.body.size",
                "http.server.response.body.size",
            )),
            Self::HttpClient => Some((
                "http.client.request.body.size",
                "http.client.response.body.size",
            )),
            Self::RpcServer | Self::RpcClient => None,
        }
    }

    pub const fn is_server(self) -> bool {
        matches!(self, Self::HttpServer | Self::RpcServer)
    }

    pub const fn index(self) -> usize {
        self as usize
    }
}

/// `error.type`, kept as what it is made from until it is exported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorType {
    None,
    /// An HTTP status that counts as an error: its number.
    Status(u16),
    /// Why there was no response (`connection_closed`, ...), or a gRPC
    /// status name.
    Named(&'static str),
    /// A gRPC status outside the standard set: its number.
    Code(u32),
}

impl ErrorType {
    pub fn value(self) -> Option<String> {
        match self {
            Self::None => None,
            Self::Status(s) => Some(s.to_string()),
            Self::Named(n) => Some(n.to_owned()),
            Self::Code(c) => Some(c.to_string()),
        }
    }
}

/// The attributes of one observation; fields an instrument does not use
/// are left empty, so they never split its series.
#[derive(Clone, Copy, Debug, Eq, Hash)]
pub struct Attrs<'a> {
    /// `http.request.method`, already `_OTHER` when not a standard one.
    pub method: &'a str,
    pub status: Option<u16>,
    /// `http.route` (HTTP servers).
    pub route: &'a str,
    /// `server.address` and `server.port` (clients).
    pub server: Option<(ServerAddress<'a>, u16)>,
    pub error: ErrorType,
    /// `network.protocol.version` (HTTP).
    pub protocol_version: &'static str,
    /// `url.scheme` (HTTP).
    pub scheme: &'a str,
    pub rpc_service: &'a str,
    pub rpc_method: &'a str,
    pub grpc_code: Option<u32>,
}

/// `a == b` for the short strings of attribute sets. An empty string
/// owned by a series has a dangling pointer, and libc's AVX-512 memcmp
/// given one (even for 0 bytes) costs about 80 ns here: a masked load from
/// an unmapped page. Equal lengths are checked first, and empty strings
/// never reach memcmp.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
}

impl PartialEq for Attrs<'_> {
    fn eq(&self, other: &Self) -> bool {
        let server = match (self.server, other.server) {
            (None, None) => true,
            (Some((ServerAddress::Name(a), p)), Some((ServerAddress::Name(b), q))) => {
                p == q && same(a, b)
            }
            (Some((ServerAddress::Ip(a), p)), Some((ServerAddress::Ip(b), q))) => p == q && a == b,
            _ => false,
        };
        // Numbers first: they tell most series apart.
        self.status == other.status
            && self.grpc_code == other.grpc_code
            && self.error == other.error
            && server
            && same(self.route, other.route)
            && same(self.method, other.method)
            && same(self.protocol_version, other.protocol_version)
            && same(self.scheme, other.scheme)
            && same(self.rpc_service, other.rpc_service)
            && same(self.rpc_method, other.rpc_method)
    }
}

impl Attrs<'_> {
    /// The series key's hash; equal attribute sets of one instrument hash
    /// equal whether borrowed or owned.
    pub fn hash_with(&self, instrument: Instrument, hasher: &impl BuildHasher) -> u64 {
        let mut h = hasher.build_hasher();
        instrument.hash(&mut h);
        self.hash(&mut h);
        h.finish()
    }

    pub fn to_owned(&self) -> OwnedAttrs {
        OwnedAttrs {
            method: self.method.into(),
            status: self.status,
            route: self.route.into(),
            server: self.server.map(|(address, port)| {
                let address = match address {
                    ServerAddress::Name(n) => OwnedAddress::Name(n.into()),
                    ServerAddress::Ip(ip) => OwnedAddress::Ip(ip),
                };
                (address, port)
            }),
            error: self.error,
            protocol_version: self.protocol_version,
            scheme: self.scheme.into(),
            rpc_service: self.rpc_service.into(),
            rpc_method: self.rpc_method.into(),
            grpc_code: self.grpc_code,
        }
    }

    /// (semantic-convention name, value) of every attribute set.
    pub fn pairs(&self) -> Vec<(&'static str, AttrValue)> {
        let mut out = Vec::with_capacity(8);
        let mut text = |key, value: &str| {
            if !value.is_empty() {
                out.push((key, AttrValue::Str(value.to_owned())));
            }
        };
        text("http.request.method", self.method);
        text("http.route", self.route);
        text("url.scheme", self.scheme);
        text("network.protocol.version", self.protocol_version);
        if !self.rpc_service.is_empty() || !self.rpc_method.is_empty() {
            text("rpc.system", "grpc");
        }
        text("rpc.service", self.rpc_service);
        text("rpc.method", self.rpc_method);
        if let Some(status) = self.status {
            out.push(("http.response.status_code", AttrValue::Int(status.into())));
        }
        if let Some(code) = self.grpc_code {
            out.push(("rpc.grpc.status_code", AttrValue::Int(code.into())));
        }
        if let Some((address, port)) = self.server {
            let address = match address {
                ServerAddress::Name(n) => n.to_owned(),
                ServerAddress::Ip(ip) => ip.to_string(),
            };
            out.push(("server.address", AttrValue::Str(address)));
            out.push(("server.port", AttrValue::Int(port.into())));
        }
        if let Some(e) = self.error.value() {
            out.push(("error.type", AttrValue::Str(e)));
        }
        out
    }
}

/// An attribute value as exported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
}

impl std::fmt::Display for AttrValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Str(s) => f.write_str(s),
            Self::Int(i) => write!(f, "{i}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnedAddress {
    Name(Box<str>),
    Ip(IpAddr),
}

/// [`Attrs`], owned by a series.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedAttrs {
    method: Box<str>,
    status: Option<u16>,
    route: Box<str>,
    server: Option<(OwnedAddress, u16)>,
    error: ErrorType,
    protocol_version: &'static str,
    scheme: Box<str>,
    rpc_service: Box<str>,
    rpc_method: Box<str>,
    grpc_code: Option<u32>,
}

impl OwnedAttrs {
    pub fn view(&self) -> Attrs<'_> {
        Attrs {
            method: &self.method,
            status: self.status,
            route: &self.route,
            server: self.server.as_ref().map(|(address, port)| {
                let address = match address {
                    OwnedAddress::Name(n) => ServerAddress::Name(n),
                    OwnedAddress::Ip(ip) => ServerAddress::Ip(*ip),
                };
                (address, *port)
            }),
            error: self.error,
            protocol_version: self.protocol_version,
            scheme: &self.scheme,
            rpc_service: &self.rpc_service,
            rpc_method: &self.rpc_method,
            grpc_code: self.grpc_code,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hashbrown::DefaultHashBuilder;

    use super::*;

    fn attrs(route: &str) -> Attrs<'_> {
        Attrs {
            method: "GET",
            status: Some(404),
            route,
            server: Some((ServerAddress::Ip(Ipv4Addr::LOCALHOST.into()), 80)),
            error: ErrorType::Status(404),
            protocol_version: "1.1",
            scheme: "http",
            rpc_service: "",
            rpc_method: "",
            grpc_code: None,
        }
    }

    #[test]
    fn owned_and_borrowed_hash_and_compare_alike() {
        let hasher = DefaultHashBuilder::default();
        let a = attrs("/users/{id}");
        let owned = a.to_owned();
        assert_eq!(owned.view(), a);
        assert_eq!(
            owned.view().hash_with(Instrument::HttpServer, &hasher),
            a.hash_with(Instrument::HttpServer, &hasher)
        );
        assert_ne!(
            a.hash_with(Instrument::HttpServer, &hasher),
            a.hash_with(Instrument::HttpClient, &hasher)
        );
        assert_ne!(attrs("/a").to_owned().view(), a);
    }

    #[test]
    fn equality_looks_at_every_field() {
        let a = attrs("/x");
        let owned = a.to_owned();
        assert_eq!(owned.view(), a);
        let changes: [fn(&mut Attrs<'static>); 10] = [
            |a| a.method = "POST",
            |a| a.status = Some(200),
            |a| a.route = "/y",
            |a| a.server = None,
            |a| a.server = Some((ServerAddress::Name("h"), 80)),
            |a| a.error = ErrorType::None,
            |a| a.protocol_version = "2",
            |a| a.scheme = "https",
            |a| a.rpc_service = "s",
            |a| a.grpc_code = Some(0),
        ];
        for change in changes {
            let mut b = attrs("/x");
            change(&mut b);
            assert_ne!(owned.view(), b, "{b:?}");
            assert_ne!(b, a, "{b:?}");
        }
    }

    #[test]
    fn pairs_skip_what_is_not_set() {
        let pairs = attrs("/x").pairs();
        let keys: Vec<_> = pairs.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "http.request.method",
                "http.route",
                "url.scheme",
                "network.protocol.version",
                "http.response.status_code",
                "server.address",
                "server.port",
                "error.type"
            ]
        );
        assert!(pairs.contains(&("error.type", AttrValue::Str("404".into()))));
    }
}
