//! The user network's DNS server at 10.0.2.3:53 (UDP): `host.internal` is the gateway
//! (10.0.2.2, the host's loopback); other names go to the host's resolver (`getaddrinfo`, through
//! std's `ToSocketAddrs`, or the [`Resolver`] of the user network's config), IPv4 answers only.
//!
//! The host resolver blocks, so each lookup runs on a short-lived thread of its own; at most
//! [`MAX_LOOKUPS`] run at once and each answer is awaited [`LOOKUP_TIMEOUT`] at most, after which
//! the guest gets SERVFAIL (a thread still stuck in `getaddrinfo` finishes on its own, and its
//! answer is thrown away). The I/O thread never waits.
//!
//! Answers: A → the addresses (NOERROR, or SERVFAIL if the lookup failed); AAAA → no records
//! (NOERROR: this network is IPv4-only, so a client moves on to A at once); other types →
//! REFUSED; malformed or multi-question queries → FORMERR; other opcodes → NOTIMP.

use super::config::{Resolver, host_lookup};
use super::wire::Peer;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};
use vmm_sys_util::eventfd::EventFd;

/// The name that means "the host": answered with the gateway's address.
pub const HOST_NAME: &str = "host.internal";
/// Host lookups running at once; more queries meanwhile get SERVFAIL.
pub const MAX_LOOKUPS: usize = 8;
/// How long the guest's query waits for the host's resolver (by default).
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Addresses per answer (keeps the reply well inside 512 bytes).
const MAX_ANSWERS: usize = 8;
/// TTL of forwarded answers; `host.internal` never changes, so it gets a day.
const FORWARDED_TTL: u32 = 60;
const HOST_TTL: u32 = 24 * 60 * 60;

const HEADER_LEN: usize = 12;
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError = 0,
    FormErr = 1,
    ServFail = 2,
    NotImp = 4,
    Refused = 5,
}

/// A parsed query: the parts an answer repeats.
#[derive(Debug, Clone)]
pub struct Query {
    pub id: u16,
    /// The query's flags word (opcode and RD are echoed).
    flags: u16,
    /// The question section as sent (repeated verbatim in the answer).
    question: Vec<u8>,
    /// The name, lower case, dots between labels, no trailing dot.
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
}

/// Parses a query; Err carries the error answer to send (or None if the message is not even a
/// query header: no answer at all).
pub fn parse_query(message: &[u8]) -> Result<Query, Option<Vec<u8>>> {
    let header = message.get(..HEADER_LEN).ok_or(None)?;
    let be16 = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
    let (id, flags, qdcount) = (be16(0), be16(2), be16(4));
    let bare_error = |rcode| Some(header_only(id, flags, rcode));
    if flags & 0x8000 != 0 {
        return Err(None); // a response, not a query: never answer one
    }
    if (flags >> 11) & 0xf != 0 {
        return Err(bare_error(Rcode::NotImp));
    }
    if qdcount != 1 {
        return Err(bare_error(Rcode::FormErr));
    }
    let mut at = HEADER_LEN;
    let mut name = String::new();
    loop {
        let len = *message.get(at).ok_or_else(|| bare_error(Rcode::FormErr))? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        // No compression pointers (0xc0) in a question we accept; labels up to 63 bytes.
        let label = message
            .get(at..at + len)
            .filter(|_| len <= 63)
            .ok_or_else(|| bare_error(Rcode::FormErr))?;
        at += len;
        if !name.is_empty() {
            name.push('.');
        }
        name.extend(label.iter().map(|&b| b.to_ascii_lowercase() as char));
        if name.len() > 253 {
            return Err(bare_error(Rcode::FormErr));
        }
    }
    let tail = message
        .get(at..at + 4)
        .ok_or_else(|| bare_error(Rcode::FormErr))?;
    let qtype = u16::from_be_bytes([tail[0], tail[1]]);
    let qclass = u16::from_be_bytes([tail[2], tail[3]]);
    let question = message[HEADER_LEN..at + 4].to_vec();
    Ok(Query {
        id,
        flags,
        question,
        name,
        qtype,
        qclass,
    })
}

/// A header-only answer (no question) with `rcode`.
fn header_only(id: u16, query_flags: u16, rcode: Rcode) -> Vec<u8> {
    let mut answer = Vec::with_capacity(HEADER_LEN);
    answer.extend_from_slice(&id.to_be_bytes());
    answer.extend_from_slice(&response_flags(query_flags, rcode).to_be_bytes());
    answer.extend_from_slice(&[0; 8]);
    answer
}

/// QR, the query's opcode and RD, RA (we recurse, through the host), and `rcode`.
fn response_flags(query_flags: u16, rcode: Rcode) -> u16 {
    0x8000 | (query_flags & 0x7900) | 0x0080 | rcode as u16
}

/// The answer to `query`: `rcode` and an A record for each of `addresses`.
pub fn answer(query: &Query, rcode: Rcode, addresses: &[Ipv4Addr], ttl: u32) -> Vec<u8> {
    let addresses = &addresses[..addresses.len().min(MAX_ANSWERS)];
    let mut answer = Vec::with_capacity(HEADER_LEN + query.question.len() + 16 * addresses.len());
    answer.extend_from_slice(&query.id.to_be_bytes());
    answer.extend_from_slice(&response_flags(query.flags, rcode).to_be_bytes());
    answer.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    answer.extend_from_slice(&(addresses.len() as u16).to_be_bytes()); // ANCOUNT
    answer.extend_from_slice(&[0; 4]); // NSCOUNT, ARCOUNT
    answer.extend_from_slice(&query.question);
    for address in addresses {
        answer.extend_from_slice(&0xc00cu16.to_be_bytes()); // the name: a pointer to the question's
        answer.extend_from_slice(&TYPE_A.to_be_bytes());
        answer.extend_from_slice(&CLASS_IN.to_be_bytes());
        answer.extend_from_slice(&ttl.to_be_bytes());
        answer.extend_from_slice(&4u16.to_be_bytes());
        answer.extend_from_slice(&address.octets());
    }
    answer
}

/// What to do with a well-formed query.
enum Plan {
    Answer(Vec<u8>),
    Lookup,
}

fn plan(query: &Query, gateway: Ipv4Addr) -> Plan {
    if query.qclass != CLASS_IN {
        return Plan::Answer(answer(query, Rcode::Refused, &[], 0));
    }
    let is_host = query.name == HOST_NAME;
    match query.qtype {
        TYPE_A if is_host => Plan::Answer(answer(query, Rcode::NoError, &[gateway], HOST_TTL)),
        TYPE_A if plausible_host_name(&query.name) => Plan::Lookup,
        // A name getaddrinfo would reject or misread (say, with a space or a NUL in it).
        TYPE_A => Plan::Answer(answer(query, Rcode::Refused, &[], 0)),
        TYPE_AAAA => Plan::Answer(answer(query, Rcode::NoError, &[], FORWARDED_TTL)),
        _ => Plan::Answer(answer(query, Rcode::Refused, &[], 0)),
    }
}

/// Letters, digits, '-' and '_' in dot-separated labels.
fn plausible_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A query waiting for the host's resolver.
struct Pending {
    ticket: u64,
    query: Query,
    client: Peer,
    deadline: Instant,
}

type LookupResult = (u64, std::io::Result<Vec<Ipv4Addr>>);

/// The DNS server's state: lookups in flight and the channel their answers come back on.
pub struct Dns {
    gateway: Ipv4Addr,
    resolver: Resolver,
    lookup_timeout: Duration,
    pending: Vec<Pending>,
    next_ticket: u64,
    in_flight: Arc<AtomicUsize>,
    results_tx: Sender<LookupResult>,
    results: Receiver<LookupResult>,
    /// Signalled by a lookup thread when it has sent its result (watched by the I/O thread).
    wake: Arc<EventFd>,
}

impl Dns {
    /// The server with the host's resolver.
    pub fn new(gateway: Ipv4Addr) -> std::io::Result<Self> {
        Self::with_resolver(gateway, std::sync::Arc::new(host_lookup), LOOKUP_TIMEOUT)
    }

    /// The server with `resolver` for names it does not answer itself.
    pub fn with_resolver(
        gateway: Ipv4Addr,
        resolver: Resolver,
        lookup_timeout: Duration,
    ) -> std::io::Result<Self> {
        let (results_tx, results) = channel();
        Ok(Dns {
            gateway,
            resolver,
            lookup_timeout,
            pending: Vec::new(),
            next_ticket: 0,
            in_flight: Arc::new(AtomicUsize::new(0)),
            results_tx,
            results,
            wake: Arc::new(EventFd::new(libc::EFD_NONBLOCK)?),
        })
    }

    /// The eventfd to watch: readable when lookups have finished.
    pub fn wake_fd(&self) -> &EventFd {
        &self.wake
    }

    /// A query from `client` at `now`; the answer now, or None if it comes later (from
    /// [`finished`](Self::finished) or [`expire`](Self::expire)) or never (not a query).
    pub fn query(&mut self, message: &[u8], client: Peer, now: Instant) -> Option<Vec<u8>> {
        let query = match parse_query(message) {
            Ok(query) => query,
            Err(answer) => return answer,
        };
        match plan(&query, self.gateway) {
            Plan::Answer(answer) => Some(answer),
            Plan::Lookup => self.start_lookup(query, client, now),
        }
    }

    fn start_lookup(&mut self, query: Query, client: Peer, now: Instant) -> Option<Vec<u8>> {
        if self.in_flight.load(Ordering::Acquire) >= MAX_LOOKUPS
            || self.pending.len() >= MAX_LOOKUPS
        {
            return Some(answer(&query, Rcode::ServFail, &[], 0));
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let (name, resolver, results, wake, in_flight) = (
            query.name.clone(),
            Arc::clone(&self.resolver),
            self.results_tx.clone(),
            Arc::clone(&self.wake),
            Arc::clone(&self.in_flight),
        );
        in_flight.fetch_add(1, Ordering::AcqRel);
        let spawned = std::thread::Builder::new()
            .name("usernet-dns".into())
            .spawn(move || {
                let result = resolver(&name);
                let _ = results.send((ticket, result));
                let _ = wake.write(1);
                in_flight.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Some(answer(&query, Rcode::ServFail, &[], 0));
        }
        self.pending.push(Pending {
            ticket,
            query,
            client,
            deadline: now + self.lookup_timeout,
        });
        None
    }

    /// Answers for the lookups that finished, with their clients.
    pub fn finished(&mut self) -> Vec<(Peer, Vec<u8>)> {
        let _ = self.wake.read();
        let mut answers = Vec::new();
        while let Ok((ticket, result)) = self.results.try_recv() {
            let Some(index) = self.pending.iter().position(|p| p.ticket == ticket) else {
                continue; // it had timed out already
            };
            let pending = self.pending.swap_remove(index);
            let answer = match result {
                Ok(addresses) => answer(&pending.query, Rcode::NoError, &addresses, FORWARDED_TTL),
                Err(e) => {
                    tracing::debug!("usernet dns: {}: {e}", pending.query.name);
                    answer(&pending.query, Rcode::ServFail, &[], 0)
                }
            };
            answers.push((pending.client, answer));
        }
        answers
    }

    /// SERVFAIL for the queries whose lookups took too long.
    pub fn expire(&mut self, now: Instant) -> Vec<(Peer, Vec<u8>)> {
        let mut answers = Vec::new();
        self.pending.retain(|pending| {
            if pending.deadline > now {
                return true;
            }
            answers.push((
                pending.client,
                answer(&pending.query, Rcode::ServFail, &[], 0),
            ));
            false
        });
        answers
    }

    /// When [`expire`](Self::expire) next has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.iter().map(|pending| pending.deadline).min()
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A query for `name` of `qtype`, as a stub resolver sends it.
    pub fn query_message(id: u16, name: &str, qtype: u16) -> Vec<u8> {
        let mut message = Vec::new();
        message.extend_from_slice(&id.to_be_bytes());
        message.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
        message.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        for label in name.split('.') {
            message.push(label.len() as u8);
            message.extend_from_slice(label.as_bytes());
        }
        message.push(0);
        message.extend_from_slice(&qtype.to_be_bytes());
        message.extend_from_slice(&CLASS_IN.to_be_bytes());
        message
    }

    /// (id, rcode, A records) of an answer; panics on anything unexpected.
    pub fn parse_answer(message: &[u8]) -> (u16, u8, Vec<Ipv4Addr>) {
        let be16 = |at: usize| u16::from_be_bytes([message[at], message[at + 1]]);
        assert!(be16(2) & 0x8000 != 0, "not a response");
        let (id, rcode, qdcount, ancount) = (be16(0), (be16(2) & 0xf) as u8, be16(4), be16(6));
        let mut at = HEADER_LEN;
        if qdcount == 1 {
            while message[at] != 0 {
                at += 1 + message[at] as usize;
            }
            at += 5;
        }
        let mut addresses = Vec::new();
        for _ in 0..ancount {
            assert_eq!(be16(at), 0xc00c);
            assert_eq!((be16(at + 2), be16(at + 4)), (TYPE_A, CLASS_IN));
            assert_eq!(be16(at + 10), 4);
            addresses.push(Ipv4Addr::new(
                message[at + 12],
                message[at + 13],
                message[at + 14],
                message[at + 15],
            ));
            at += 16;
        }
        assert_eq!(at, message.len());
        (id, rcode, addresses)
    }

    const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);

    fn immediate(message: &[u8]) -> Option<Vec<u8>> {
        let mut dns = Dns::new(GATEWAY).unwrap();
        let client = Peer {
            mac: smoltcp::wire::EthernetAddress([2; 6]),
            ip: Ipv4Addr::new(10, 0, 2, 15),
            port: 5353,
        };
        dns.query(message, client, Instant::now())
    }

    #[test]
    fn net_dns_host_internal_is_the_gateway() {
        let answer = immediate(&query_message(7, "host.internal", TYPE_A)).unwrap();
        assert_eq!(parse_answer(&answer), (7, 0, vec![GATEWAY]));
        // Case-insensitive, as DNS names are.
        let answer = immediate(&query_message(8, "Host.Internal", TYPE_A)).unwrap();
        assert_eq!(parse_answer(&answer), (8, 0, vec![GATEWAY]));
        // RD echoed, RA set.
        assert_eq!(u16::from_be_bytes([answer[2], answer[3]]), 0x8180);
    }

    #[test]
    fn net_dns_answers_aaaa_empty_and_refuses_other_types() {
        let answer = immediate(&query_message(9, "host.internal", TYPE_AAAA)).unwrap();
        assert_eq!(parse_answer(&answer), (9, 0, vec![]));
        let answer = immediate(&query_message(10, "example.org", 15 /* MX */)).unwrap();
        assert_eq!(parse_answer(&answer), (10, Rcode::Refused as u8, vec![]));
        let answer = immediate(&query_message(11, "bad name", TYPE_A)).unwrap();
        assert_eq!(parse_answer(&answer), (11, Rcode::Refused as u8, vec![]));
    }

    #[test]
    fn net_dns_malformed_queries() {
        assert!(immediate(b"short").is_none());
        let mut response = query_message(1, "host.internal", TYPE_A);
        response[2] |= 0x80;
        assert!(immediate(&response).is_none(), "never answer a response");
        let mut truncated = query_message(2, "host.internal", TYPE_A);
        truncated.truncate(truncated.len() - 2);
        assert_eq!(
            parse_answer(&immediate(&truncated).unwrap()).1,
            Rcode::FormErr as u8
        );
        let mut two_questions = query_message(3, "host.internal", TYPE_A);
        two_questions[5] = 2;
        assert_eq!(
            parse_answer(&immediate(&two_questions).unwrap()).1,
            Rcode::FormErr as u8
        );
        let mut status = query_message(4, "host.internal", TYPE_A);
        status[2] |= 2 << 3; // opcode STATUS
        assert_eq!(
            parse_answer(&immediate(&status).unwrap()).1,
            Rcode::NotImp as u8
        );
        let mut pointer = query_message(5, "host.internal", TYPE_A);
        pointer[HEADER_LEN] = 0xc0;
        assert_eq!(
            parse_answer(&immediate(&pointer).unwrap()).1,
            Rcode::FormErr as u8
        );
    }

    #[test]
    fn net_dns_forwards_other_names_to_the_host_resolver() {
        let mut dns = Dns::new(GATEWAY).unwrap();
        let client = Peer {
            mac: smoltcp::wire::EthernetAddress([2; 6]),
            ip: Ipv4Addr::new(10, 0, 2, 15),
            port: 5353,
        };
        // "localhost" resolves from /etc/hosts: no network needed.
        assert!(
            dns.query(
                &query_message(12, "localhost", TYPE_A),
                client,
                Instant::now()
            )
            .is_none()
        );
        assert!(dns.next_deadline().is_some());
        let deadline = Instant::now() + LOOKUP_TIMEOUT;
        let answers = loop {
            let answers = dns.finished();
            if !answers.is_empty() || Instant::now() > deadline {
                break answers;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].0, client);
        let (id, rcode, addresses) = parse_answer(&answers[0].1);
        assert_eq!((id, rcode), (12, 0));
        assert!(addresses.contains(&Ipv4Addr::LOCALHOST), "{addresses:?}");
        assert!(dns.next_deadline().is_none());
    }

    #[test]
    fn net_dns_expired_lookups_get_servfail() {
        let mut dns = Dns::new(GATEWAY).unwrap();
        let client = Peer {
            mac: smoltcp::wire::EthernetAddress([2; 6]),
            ip: Ipv4Addr::new(10, 0, 2, 15),
            port: 5353,
        };
        assert!(
            dns.query(
                &query_message(13, "localhost", TYPE_A),
                client,
                Instant::now()
            )
            .is_none()
        );
        let answers = dns.expire(Instant::now() + LOOKUP_TIMEOUT + Duration::from_secs(1));
        assert_eq!(answers.len(), 1);
        assert_eq!(
            parse_answer(&answers[0].1),
            (13, Rcode::ServFail as u8, vec![])
        );
        assert!(dns.next_deadline().is_none());
    }
}
