//! The optional `[frontend]` table of a hardware profile: the network and API stack between a
//! client and the deployment, which the latency a client measures includes and the serving
//! engine's does not (see [`crate::metrics::client`] for how it is applied).
//!
//! What it describes: one round trip between client and endpoint, the round trips that open a
//! connection when none is kept open, a fixed API time per request (gateway, authentication,
//! parsing, tokenisation, routing) and a fixed time per streamed token (detokenisation, event
//! framing, serialisation). Deliberately ignored: bandwidth of the client's link (prompts and
//! token events are small), packet loss and retransmission, DNS look-ups, queueing inside the
//! API stack, and any dependence of these times on load.

use serde::{Deserialize, Serialize};

use super::validate::range::TIME_S;
use super::validate::Checker;

/// Most round trips opening one connection: TCP with TLS 1.2 takes 3, TCP with TLS 1.3 2,
/// QUIC 1; 10 leaves room for proxies and retries without allowing nonsense.
pub const MAX_CONNECTION_ROUND_TRIPS: u32 = 10;

/// The network and API stack between a client and the deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frontend {
    /// Round-trip time between the client and the API endpoint, s.
    pub network_rtt_s: f64,
    /// Round trips spent opening a connection for a request when the connection is not
    /// persistent (TCP + TLS 1.3: 2; TCP + TLS 1.2: 3; QUIC: 1).
    pub connection_round_trips: u32,
    /// True when the client keeps one connection open across requests (a WebSocket, or an
    /// HTTP connection kept alive), so that no request opens one. Default false.
    #[serde(default)]
    pub persistent_connection: bool,
    /// API processing time per request before it reaches the serving engine (gateway,
    /// authentication, request parsing, tokenisation, routing), s.
    pub request_overhead_s: f64,
    /// Time per streamed output token on the path from the engine to the client
    /// (detokenisation, event framing, serialisation), s; tokens pass it one after another.
    pub token_overhead_s: f64,
}

impl Frontend {
    /// Time a request spends before the engine beyond the one-way network trips: the
    /// connection round trips (none when persistent) and the per-request API time, s.
    pub fn roundtrip_overhead_s(&self) -> f64 {
        let connect = if self.persistent_connection {
            0.0
        } else {
            f64::from(self.connection_round_trips) * self.network_rtt_s
        };
        connect + self.request_overhead_s
    }

    /// Time between a response's last token leaving the engine and the client's next request,
    /// sent at once, reaching it, s: half a round trip and one token's stream time down, half a
    /// round trip and the per-roundtrip overhead up (the stream's own lag behind a fast engine
    /// left out).
    pub fn turn_gap_s(&self) -> f64 {
        self.network_rtt_s + self.roundtrip_overhead_s() + self.token_overhead_s
    }

    /// Record every problem, with paths under `frontend.`.
    pub(super) fn check(&self, c: &mut Checker) {
        c.in_range("frontend.network_rtt_s", self.network_rtt_s, TIME_S);
        if self.connection_round_trips > MAX_CONNECTION_ROUND_TRIPS {
            c.fail(
                "frontend.connection_round_trips",
                format!(
                    "expected at most {MAX_CONNECTION_ROUND_TRIPS}, found {}",
                    self.connection_round_trips
                ),
            );
        }
        c.in_range(
            "frontend.request_overhead_s",
            self.request_overhead_s,
            TIME_S,
        );
        c.in_range("frontend.token_overhead_s", self.token_overhead_s, TIME_S);
    }
}

#[cfg(test)]
mod tests {
    use crate::profile::catalog::{hardware_from_str, profile_text};
    use crate::profile::{load_hardware, Override};

    fn wse3_with(replace: &str, with: &str) -> crate::Result<super::super::HardwareProfile> {
        let (_, text) = profile_text("hardware", "wse-3").unwrap();
        assert!(text.contains(replace), "{replace} not in the profile");
        hardware_from_str("test.toml".into(), &text.replace(replace, with), &[])
    }

    #[test]
    fn bad_values_name_file_and_field() {
        for (field, bad) in [
            ("network_rtt_s", "-0.01"),
            ("request_overhead_s", "1e9"),
            ("token_overhead_s", "nan"),
            ("connection_round_trips", "11"),
        ] {
            let (_, text) = profile_text("hardware", "wse-3").unwrap();
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{field} = ")))
                .unwrap_or_else(|| panic!("{field} not in wse-3"));
            let e = wse3_with(line, &format!("{field} = {bad}"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("test.toml") && e.contains(&format!("frontend.{field}")),
                "{e}"
            );
        }
        let e = wse3_with("[frontend]\n", "[frontend]\nlatency_s = 1.0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("test.toml") && e.contains("latency_s"), "{e}");
        let e = wse3_with("persistent_connection = false", "persistent_connection = 1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("persistent_connection"), "{e}");
    }

    #[test]
    fn persistence_defaults_to_off_and_set_reaches_it() {
        let hw = wse3_with("persistent_connection = false\n", "").unwrap();
        let f = hw.frontend.unwrap();
        assert!(!f.persistent_connection);
        let sets = [Override::parse("hardware.frontend.persistent_connection=true").unwrap()];
        let f = load_hardware("wse-3", &sets).unwrap().frontend.unwrap();
        assert!(f.persistent_connection);
        // Persistent: no connection is opened, only the API time remains.
        assert_eq!(f.roundtrip_overhead_s(), f.request_overhead_s);
    }

    #[test]
    fn roundtrip_overhead_counts_the_connection() {
        let f = super::Frontend {
            network_rtt_s: 0.04,
            connection_round_trips: 2,
            persistent_connection: false,
            request_overhead_s: 0.01,
            token_overhead_s: 0.0,
        };
        approx::assert_relative_eq!(f.roundtrip_overhead_s(), 2.0 * 0.04 + 0.01);
    }
}
