//! The endpoint users are given: the gateway's address plus the engine's id,
//! as a Spark Connect connection string a stock client uses as it is.

use std::net::{IpAddr, SocketAddr};

use rucat_core::EngineId;

use super::route::ENGINE_ID_KEY;

/// How users reach the gateway; `GET /engine/{id}` shows a Running engine's
/// endpoint built from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advertised {
    /// `host:port`.
    address: String,
    tls: bool,
}

impl Advertised {
    /// Users reach the gateway at `address` (`host:port`), over TLS if `tls`.
    pub fn new(address: impl Into<String>, tls: bool) -> Self {
        Self {
            address: address.into(),
            tls,
        }
    }

    /// What a gateway listening on `listen` can say of itself. A loopback or
    /// unspecified address becomes `localhost`: pyspark sends a token over
    /// plain text only to the host literally named `localhost` (elsewhere it
    /// insists on TLS), and `0.0.0.0` is no address to connect to. Behind a
    /// load balancer, configure the address instead.
    pub fn from_listen(listen: SocketAddr, tls: bool) -> Self {
        let ip = listen.ip();
        let host = if ip.is_loopback() || ip.is_unspecified() {
            "localhost".to_owned()
        } else {
            match ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            }
        };
        Self::new(format!("{host}:{}", listen.port()), tls)
    }

    /// The connection string with a placeholder for the engine id, for logs.
    pub fn endpoint_pattern(&self) -> String {
        self.connection_string(&"<engine id>")
    }

    /// The connection string of engine `id`, e.g.
    /// `sc://localhost:15002/;x-rucat-engine-id=<id>`. With auth, users
    /// append `;token=<their bearer token>`.
    pub fn endpoint(&self, id: &EngineId) -> String {
        self.connection_string(id)
    }

    fn connection_string(&self, id: &dyn std::fmt::Display) -> String {
        let tls = if self.tls { ";use_ssl=true" } else { "" };
        format!("sc://{}/;{ENGINE_ID_KEY}={id}{tls}", self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_name_the_gateway_and_the_engine() {
        let id = EngineId::generate();
        let local = Advertised::from_listen("127.0.0.1:15002".parse().unwrap(), false);
        assert_eq!(
            local.endpoint(&id),
            format!("sc://localhost:15002/;x-rucat-engine-id={id}")
        );
        let any = Advertised::from_listen("0.0.0.0:443".parse().unwrap(), true);
        assert_eq!(
            any.endpoint(&id),
            format!("sc://localhost:443/;x-rucat-engine-id={id};use_ssl=true")
        );
        let v6 = Advertised::from_listen("[fd00::1]:15002".parse().unwrap(), false);
        assert!(v6.endpoint(&id).starts_with("sc://[fd00::1]:15002/;"));
        let public = Advertised::new("rucat.example.com:443", true);
        assert!(
            public
                .endpoint(&id)
                .starts_with("sc://rucat.example.com:443/;x-rucat-engine-id=")
        );
    }
}
