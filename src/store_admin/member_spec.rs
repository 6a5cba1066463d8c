//! The operator's words for a Raft member: an id (`3`) and a peer address (`10.0.0.3:10082`), as
//! written in `KUBOARD_RAFT_PEERS` and in `kuboard admin members add 3=10.0.0.3:10082`. Checked the
//! same way by the command (before anything is sent) and by the HTTP API (before anything changes).

use crate::config::valid_host_port;

/// The shape every error message shows.
pub const MEMBER_SPEC_EXPECTED: &str = "expected ID=HOST:PORT, e.g. 4=10.0.0.4:10082 (ID an integer >= 1, HOST:PORT \
                                        the member's Raft peer address, KUBOARD_RAFT_PORT)";

/// A member id and its peer address, both checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSpec {
    pub id: u64,
    pub address: String,
}

/// A member id: an integer >= 1.
pub fn parse_member_id(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|id| *id >= 1)
        .ok_or_else(|| format!("{text:?} is not a member id: expected an integer >= 1"))
}

/// A peer address `host:port` (host a name, an IPv4 address or a bracketed IPv6 address), not a URL.
pub fn check_peer_address(text: &str) -> Result<String, String> {
    let address = text.trim();
    if address.contains("://") {
        return Err(format!(
            "{text:?} is a URL; a peer address is HOST:PORT without a scheme, e.g. 10.0.0.4:10082"
        ));
    }
    if !valid_host_port(address) {
        return Err(format!(
            "{text:?} is not a peer address: expected HOST:PORT with a port from 1 to 65535, e.g. 10.0.0.4:10082"
        ));
    }
    Ok(address.to_string())
}

/// `ID=HOST:PORT`, or the id and the address as two words (`ID HOST:PORT`, as the store's log
/// advice writes it).
pub fn parse_member_spec(words: &[String]) -> Result<MemberSpec, String> {
    let (id, address) = match words {
        [one] => one
            .split_once('=')
            .ok_or_else(|| format!("{one:?}: {MEMBER_SPEC_EXPECTED}"))?,
        [id, address] => (id.as_str(), address.as_str()),
        _ => return Err(format!("{:?}: {MEMBER_SPEC_EXPECTED}", words.join(" "))),
    };
    Ok(MemberSpec {
        id: parse_member_id(id)?,
        address: check_peer_address(address)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(words: &[&str], expected: Result<(u64, &str), &str>) {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        let parsed = parse_member_spec(&words);
        match (parsed, expected) {
            (Ok(spec), Ok((id, address))) => assert_eq!((spec.id, spec.address.as_str()), (id, address)),
            (Err(message), Err(fragment)) => {
                assert!(message.contains(fragment), "{words:?}: {message:?} lacks {fragment:?}")
            }
            (parsed, expected) => panic!("{words:?}: got {parsed:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn member_specs() {
        check(&["4=10.0.0.4:10082"], Ok((4, "10.0.0.4:10082")));
        check(&["4 = kuboard-3.kuboard:10082"], Ok((4, "kuboard-3.kuboard:10082")));
        check(&["12=[::1]:7000"], Ok((12, "[::1]:7000")));
        check(&["4", "127.0.0.1:9"], Ok((4, "127.0.0.1:9")));
        check(&["4"], Err("expected ID=HOST:PORT"));
        check(&["garbage"], Err("expected ID=HOST:PORT"));
        check(&["0=10.0.0.4:10082"], Err("not a member id"));
        check(&["-1=10.0.0.4:10082"], Err("not a member id"));
        check(&["x=10.0.0.4:10082"], Err("not a member id"));
        check(&["4=10.0.0.4"], Err("not a peer address"));
        check(&["4=10.0.0.4:0"], Err("not a peer address"));
        check(&["4=10.0.0.4:99999"], Err("not a peer address"));
        check(&["4=:10082"], Err("not a peer address"));
        check(&["4=a b:10082"], Err("not a peer address"));
        check(&["4=http://10.0.0.4:10082"], Err("is a URL"));
        check(&["4=::1:10082"], Err("not a peer address"));
        check(&["4", "a:1", "b:2"], Err("expected ID=HOST:PORT"));
    }
}
