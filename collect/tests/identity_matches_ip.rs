//! The collector's network identity of this machine (interfaces that are up, their MACs,
//! IPv4 and IPv6 addresses, the default route's interface) checked against iproute2's
//! `ip -j address` and `ip -j route show default`, read here by a small JSON reader of the
//! test's own (this crate has no JSON dependency). `ip` must be installed: a missing `ip`
//! fails the test.

use std::collections::BTreeSet;
use std::net::Ipv6Addr;
use std::process::Command;

use pivitals_collect::Collector;

#[test]
fn identity_matches_ip_address_and_ip_route() {
    let info = Collector::new("/").node_info();
    let links = ip(&["-j", "address"]);

    let mut expected = Vec::new();
    for link in links.items() {
        let flags: Vec<&str> = link.get("flags").items().iter().map(Json::str).collect();
        if !flags.contains(&"UP") || flags.contains(&"LOOPBACK") {
            continue;
        }
        let name = link.get("ifname").str().to_owned();
        let mac = Some(link.get("address").str())
            .filter(|m| !m.is_empty() && m.bytes().any(|b| !matches!(b, b'0' | b':')))
            .map(str::to_owned);
        let mut ipv4 = BTreeSet::new();
        let mut ipv6 = BTreeSet::new();
        for address in link.get("addr_info").items() {
            let local = address.get("local").str();
            match address.get("family").str() {
                "inet" => {
                    ipv4.insert(local.to_owned());
                }
                "inet6" => {
                    let parsed: Ipv6Addr = local.parse().expect("ip shows IPv6 addresses");
                    if parsed.segments()[0] & 0xffc0 != 0xfe80 {
                        ipv6.insert(parsed.to_string());
                    }
                }
                _ => {}
            }
        }
        expected.push((name, mac, ipv4, ipv6));
    }
    let found: Vec<_> = info
        .interfaces
        .iter()
        .map(|i| {
            (
                i.name.clone(),
                i.mac.clone(),
                i.ipv4.iter().cloned().collect::<BTreeSet<_>>(),
                i.ipv6.iter().cloned().collect::<BTreeSet<_>>(),
            )
        })
        .collect();
    println!("{info:#?}");
    assert_eq!(
        found, expected,
        "collector (left) vs `ip -j address` (right)"
    );

    let mut routes = ip(&["-j", "route", "show", "default"]);
    if routes.items().is_empty() {
        routes = ip(&["-6", "-j", "route", "show", "default"]);
    }
    let default = routes
        .items()
        .iter()
        .filter(|r| r.get("type").str() != "unreachable" && !r.get("dev").str().is_empty())
        .min_by_key(|r| r.get("metric").num())
        .map(|r| r.get("dev").str().to_owned());
    assert_eq!(
        info.default_interface, default,
        "collector vs `ip route show default`"
    );
    if let Some(ipv4) = info.primary_ipv4() {
        let default = info.default_interface.as_deref().unwrap_or_default();
        println!("primary IPv4 {ipv4} (default interface {default})");
    }
}

/// `ip ARGS` parsed; a missing `ip` or a failure panics.
fn ip(args: &[&str]) -> Json {
    let output = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("`ip` (iproute2) must be installed for this test: {e}"));
    assert!(output.status.success(), "ip {args:?}: {output:?}");
    let text = String::from_utf8(output.stdout).expect("ip prints UTF-8");
    let mut parser = Parser {
        bytes: text.as_bytes(),
        at: 0,
    };
    parser.value()
}

/// A JSON value, as much of it as `ip -j` needs.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool,
    Number(f64),
    Text(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The member `key` of an object; `Null` when absent.
    fn get(&self, key: &str) -> &Json {
        match self {
            Json::Object(members) => members
                .iter()
                .find(|(k, _)| k == key)
                .map_or(&Json::Null, |(_, v)| v),
            _ => &Json::Null,
        }
    }

    /// The items of an array; none for anything else.
    fn items(&self) -> &[Json] {
        match self {
            Json::Array(items) => items,
            _ => &[],
        }
    }

    /// A string's text; empty for anything else.
    fn str(&self) -> &str {
        match self {
            Json::Text(text) => text,
            _ => "",
        }
    }

    /// A number as an integer (0 for anything else).
    fn num(&self) -> u64 {
        match self {
            Json::Number(n) => *n as u64,
            _ => 0,
        }
    }
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.skip_space();
        let found = self.bytes.get(self.at) == Some(&byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn value(&mut self) -> Json {
        self.skip_space();
        match self.bytes.get(self.at).copied() {
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                if !self.eat(b']') {
                    loop {
                        items.push(self.value());
                        if self.eat(b']') {
                            break;
                        }
                        assert!(self.eat(b','), "a comma at byte {}", self.at);
                    }
                }
                Json::Array(items)
            }
            Some(b'{') => {
                self.at += 1;
                let mut members = Vec::new();
                if !self.eat(b'}') {
                    loop {
                        self.skip_space();
                        let Json::Text(key) = self.value() else {
                            panic!("a key at byte {}", self.at);
                        };
                        assert!(self.eat(b':'), "a colon at byte {}", self.at);
                        members.push((key, self.value()));
                        if self.eat(b'}') {
                            break;
                        }
                        assert!(self.eat(b','), "a comma at byte {}", self.at);
                    }
                }
                Json::Object(members)
            }
            Some(b'"') => {
                self.at += 1;
                let mut text = Vec::new();
                loop {
                    match self.bytes[self.at] {
                        b'"' => break,
                        b'\\' => {
                            self.at += 1;
                            let escaped = self.bytes[self.at];
                            assert_ne!(escaped, b'u', "no \\u escapes in ip's output");
                            text.push(match escaped {
                                b'n' => b'\n',
                                b't' => b'\t',
                                other => other,
                            });
                        }
                        byte => text.push(byte),
                    }
                    self.at += 1;
                }
                self.at += 1;
                Json::Text(String::from_utf8(text).expect("UTF-8 text"))
            }
            Some(b't' | b'f' | b'n') => {
                let word: String = self.bytes[self.at..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphabetic())
                    .map(|b| char::from(*b))
                    .collect();
                self.at += word.len();
                match word.as_str() {
                    "true" | "false" => Json::Bool,
                    "null" => Json::Null,
                    _ => panic!("unexpected {word:?}"),
                }
            }
            _ => {
                let start = self.at;
                while self
                    .bytes
                    .get(self.at)
                    .is_some_and(|b| b.is_ascii_digit() || b"+-.eE".contains(b))
                {
                    self.at += 1;
                }
                let number = std::str::from_utf8(&self.bytes[start..self.at]).expect("ASCII");
                Json::Number(
                    number
                        .parse()
                        .unwrap_or_else(|_| panic!("a number at byte {start}: {number:?}")),
                )
            }
        }
    }
}

#[test]
fn the_json_reader_reads_what_ip_prints() {
    let text = r#"[{"ifname":"eth0","flags":["UP"],"mtu":1500,"x":null,"y":true,
        "addr_info":[{"family":"inet","local":"192.0.2.2"}],"label":"a\"b"}]"#;
    let mut parser = Parser {
        bytes: text.as_bytes(),
        at: 0,
    };
    let parsed = parser.value();
    let link = &parsed.items()[0];
    assert_eq!(link.get("ifname").str(), "eth0");
    assert_eq!(link.get("mtu").num(), 1500);
    assert_eq!(link.get("label").str(), "a\"b");
    assert_eq!(
        link.get("addr_info").items()[0].get("local").str(),
        "192.0.2.2"
    );
    assert_eq!(link.get("missing"), &Json::Null);
}
