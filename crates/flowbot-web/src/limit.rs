//! Rate limits: requests per minute per client address, and new conversations per minute for
//! everyone together, as token buckets in bounded memory; and where a client's address comes
//! from.
//!
//! A bucket holds up to a minute's allowance and refills continuously; a request takes one
//! token, and an empty bucket answers with the wait until the next token. The per-client table
//! keeps at most [`MAX_CLIENTS`] buckets: a full bucket is the same as none, so when the table is
//! full, the full ones are dropped first, then the least recently used eighth. An IPv6 client
//! is its /64 (one subscriber's network), so a client cannot get more allowance by rotating
//! through the addresses of its own network.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName};

/// The most client addresses tracked at once (about 64 bytes each).
pub(crate) const MAX_CLIENTS: usize = 65_536;

/// One token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A bucket's size and refill: `per_minute` tokens, refilled over a minute.
#[derive(Debug, Clone, Copy)]
struct Rate {
    capacity: f64,
    per_second: f64,
}

impl Rate {
    fn per_minute(n: u32) -> Self {
        let capacity = f64::from(n.max(1));
        Rate { capacity, per_second: capacity / 60.0 }
    }
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Self {
        Bucket { tokens: rate.capacity, at: now }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.capacity);
        self.at = now;
    }

    /// Takes a token, or says how long until one is there.
    fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - self.tokens) / rate.per_second))
    }

    /// Whether it has refilled completely by `now` (then it is the same as no bucket).
    fn is_full(&self, rate: Rate, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens + elapsed * rate.per_second >= rate.capacity
    }
}

/// Who a client is for the per-client limit: its address (an IPv6 address's /64), or
/// `None` when no address is known (all such requests share one bucket).
pub(crate) type Client = Option<IpAddr>;

/// The web chat's limits.
#[derive(Debug)]
pub(crate) struct Limiter {
    per_client: Rate,
    new_conversations: Rate,
    clients: Mutex<HashMap<Client, Bucket>>,
    global: Mutex<Bucket>,
    max_clients: usize,
    /// When the cap on new conversations was last logged (at most once a minute).
    capped_logged: Mutex<Option<Instant>>,
}

impl Limiter {
    pub(crate) fn new(requests_per_minute: u32, new_conversations_per_minute: u32) -> Self {
        Self::with_capacity(requests_per_minute, new_conversations_per_minute, MAX_CLIENTS)
    }

    fn with_capacity(requests: u32, conversations: u32, max_clients: usize) -> Self {
        let new_conversations = Rate::per_minute(conversations);
        Limiter {
            per_client: Rate::per_minute(requests),
            new_conversations,
            clients: Mutex::new(HashMap::new()),
            global: Mutex::new(Bucket::full(new_conversations, Instant::now())),
            max_clients,
            capped_logged: Mutex::new(None),
        }
    }

    /// One request of `client`: allowed, or the wait until it would be.
    pub(crate) fn request(&self, client: Client) -> Result<(), Duration> {
        self.request_at(client, Instant::now())
    }

    fn request_at(&self, client: Client, now: Instant) -> Result<(), Duration> {
        let rate = self.per_client;
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = clients.get_mut(&client) {
            return bucket.take(rate, now);
        }
        if clients.len() >= self.max_clients {
            evict(&mut clients, rate, now, self.max_clients);
        }
        let mut bucket = Bucket::full(rate, now);
        let taken = bucket.take(rate, now);
        clients.insert(client, bucket);
        taken
    }

    /// One new conversation: allowed, or the wait until one would be.
    pub(crate) fn new_conversation(&self) -> Result<(), Duration> {
        let now = Instant::now();
        let taken = {
            let mut global = self.global.lock().unwrap_or_else(PoisonError::into_inner);
            global.take(self.new_conversations, now)
        };
        if taken.is_err() {
            let mut logged = self.capped_logged.lock().unwrap_or_else(PoisonError::into_inner);
            if logged.is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(60))
            {
                *logged = Some(now);
                tracing::warn!(
                    "web: [web] new_conversations_per_minute reached: new conversations wait"
                );
            }
        }
        taken
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// Makes room in a full table: drops the full buckets, and if that frees nothing, the least
/// recently used eighth (so a stream of new addresses costs one sweep per eighth of the table).
fn evict(clients: &mut HashMap<Client, Bucket>, rate: Rate, now: Instant, max: usize) {
    clients.retain(|_, bucket| !bucket.is_full(rate, now));
    if clients.len() < max {
        return;
    }
    let mut times: Vec<Instant> = clients.values().map(|b| b.at).collect();
    let cut = (max / 8).max(1).min(times.len() - 1);
    let (_, &mut oldest_kept, _) = times.select_nth_unstable(cut);
    clients.retain(|_, bucket| bucket.at >= oldest_kept);
    // Many buckets touched at the same instant could all survive: then any will do.
    while clients.len() >= max {
        let Some(key) = clients.keys().next().copied() else { break };
        clients.remove(&key);
    }
}

/// The client's address: from the trusted proxy's header when one is configured (its last
/// address: the one the proxy itself saw), else the TCP peer's. A header a client sends
/// when none is configured is never read.
pub(crate) fn client_address(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trusted: Option<&HeaderName>,
) -> Client {
    let from_header = trusted.and_then(|name| {
        let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
        parse_address(value.rsplit(',').next()?.trim())
    });
    from_header.or(peer.map(|p| p.ip())).map(grouped)
}

/// `192.0.2.1`, `2001:db8::1`, `192.0.2.1:443`, `[2001:db8::1]:443`.
fn parse_address(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().ok().or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// IPv4 as is (IPv4-mapped IPv6 too); IPv6 as its /64.
fn grouped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// A wait as `Retry-After` seconds: rounded up, at least 1.
pub(crate) fn retry_after(wait: Duration) -> u64 {
    let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    whole.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Client {
        Some(s.parse().unwrap())
    }

    #[test]
    fn a_client_gets_its_minute_then_waits() {
        let limiter = Limiter::new(3, 10);
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.request_at(ip("192.0.2.1"), t), Ok(()));
        }
        let wait = limiter.request_at(ip("192.0.2.1"), t).unwrap_err();
        assert_eq!(retry_after(wait), 20, "{wait:?}");
        assert_eq!(limiter.request_at(ip("192.0.2.2"), t), Ok(()), "another client");
        assert_eq!(limiter.request_at(ip("192.0.2.1"), t + Duration::from_secs(20)), Ok(()));
    }

    #[test]
    fn the_table_stays_bounded() {
        let limiter = Limiter::with_capacity(10, 10, 64);
        let t = Instant::now();
        for i in 0..10_000u32 {
            let client = Some(IpAddr::from(i.to_be_bytes()));
            let now = t + Duration::from_millis(u64::from(i));
            assert_eq!(limiter.request_at(client, now), Ok(()));
            assert!(limiter.tracked() <= 64, "{} after {i}", limiter.tracked());
        }
        // The most recent client is still limited as it was.
        let last = Some(IpAddr::from(9_999u32.to_be_bytes()));
        let now = t + Duration::from_millis(10_000);
        for _ in 0..9 {
            assert_eq!(limiter.request_at(last, now), Ok(()));
        }
        assert!(limiter.request_at(last, now).is_err());
    }

    /// `cargo test -p flowbot-web --release a_full_table -- --nocapture` prints the cost.
    #[test]
    fn a_full_table_of_clients_stays_bounded() {
        let limiter = Limiter::new(120, 600);
        let t = Instant::now();
        let addresses = 4 * MAX_CLIENTS as u32;
        let began = Instant::now();
        for i in 0..addresses {
            let client = Some(IpAddr::from((0x0a00_0000 + i).to_be_bytes()));
            assert_eq!(limiter.request_at(client, t + Duration::from_micros(u64::from(i))), Ok(()));
        }
        let spent = began.elapsed();
        assert!(limiter.tracked() <= MAX_CLIENTS, "{}", limiter.tracked());
        eprintln!(
            "{addresses} new client addresses through a table of {MAX_CLIENTS}: {:?} each",
            spent / addresses
        );
    }

    #[test]
    fn addresses_come_from_the_trusted_header_only() {
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "198.51.100.7, 192.0.2.1".parse().unwrap());
        let xff = HeaderName::from_static("x-forwarded-for");
        assert_eq!(client_address(&headers, Some(peer), None), ip("127.0.0.1"));
        assert_eq!(client_address(&headers, Some(peer), Some(&xff)), ip("192.0.2.1"));
        headers.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(client_address(&headers, Some(peer), Some(&xff)), ip("127.0.0.1"));
        headers.insert("x-forwarded-for", "[2001:db8:1:2:3::4]:443".parse().unwrap());
        assert_eq!(client_address(&headers, None, Some(&xff)), ip("2001:db8:1:2::"));
        assert_eq!(client_address(&HeaderMap::new(), None, Some(&xff)), None);
        let mapped: SocketAddr = "[::ffff:192.0.2.9]:1".parse().unwrap();
        assert_eq!(client_address(&HeaderMap::new(), Some(mapped), None), ip("192.0.2.9"));
    }

    #[test]
    fn waits_round_up() {
        assert_eq!(retry_after(Duration::ZERO), 1);
        assert_eq!(retry_after(Duration::from_millis(1)), 1);
        assert_eq!(retry_after(Duration::from_secs(2)), 2);
        assert_eq!(retry_after(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn new_conversations_are_capped() {
        let limiter = Limiter::new(100, 2);
        assert!(limiter.new_conversation().is_ok());
        assert!(limiter.new_conversation().is_ok());
        let wait = limiter.new_conversation().unwrap_err();
        assert!((1..=30).contains(&retry_after(wait)), "{wait:?}");
    }
}
