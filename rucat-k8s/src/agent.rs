//! How rucat names itself to the API server: `User-Agent: rucat/<version>`
//! on every call, so audit logs and API priority and fairness can tell
//! rucat's requests from other clients of the same service account.

/// `rucat/<version>`.
pub const USER_AGENT: &str = concat!("rucat/", env!("CARGO_PKG_VERSION"));

const HEADER: &str = "user-agent";

/// Adds rucat's User-Agent to a client configuration.
pub fn identify(config: &mut kube::Config) {
    // Both parse: they are constants of valid header syntax.
    if let (Ok(name), Ok(value)) = (HEADER.parse(), USER_AGENT.parse()) {
        config.headers.retain(|(name, _)| name.as_str() != HEADER);
        config.headers.push((name, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_names_rucat_and_its_version_once() {
        let mut config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        identify(&mut config);
        identify(&mut config);
        let agents: Vec<_> = config
            .headers
            .iter()
            .filter(|(name, _)| name.as_str() == HEADER)
            .map(|(_, value)| value.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(agents, [format!("rucat/{}", env!("CARGO_PKG_VERSION"))]);
    }
}
