//! A TCP proxy that counts the connections made through it.
//!
//! [`CountingProxy`] listens on `127.0.0.1:<free port>` and forwards every connection it accepts
//! to one upstream address (a PostgreSQL server), byte for byte, so a process pointed at the proxy
//! behaves as it would against the server while the test learns how many connections it opened
//! and, from each connection's startup message, to which database and under which
//! `application_name`. A connection that negotiates TLS is forwarded (and counted) all the same;
//! only its startup parameters stay unknown.
//!
//! Plain std threads: one accepting, two per connection (one per direction). Threads of a
//! connection end when either side closes it; dropping the proxy stops accepting.
//!
//! ```ignore
//! let proxy = CountingProxy::start(("127.0.0.1", 5432))?;
//! let url = format!("postgres://postgres@127.0.0.1:{}/postgres", proxy.port());
//! // … run something against `url` …
//! proxy.wait_idle(Duration::from_secs(10));
//! assert_eq!(proxy.accepted(), 1);
//! ```

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The PostgreSQL protocol's request codes that may come before the startup message.
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;
/// The first byte of a TLS handshake record (the client's hello after an accepted SSLRequest).
const TLS_HANDSHAKE: u8 = 0x16;

/// One connection the proxy accepted.
#[derive(Debug, Clone, Default)]
pub struct ConnectionRecord {
    /// Its place in the order of acceptance, from 1 over the proxy's life.
    pub number: usize,
    /// The startup message's parameters (`user`, `database`, `application_name`, …), in the order
    /// sent; empty until it arrived, and for TLS or cancel connections.
    pub startup: Vec<(String, String)>,
    /// The client asked for TLS (SSLRequest) and then spoke TLS.
    pub tls: bool,
    /// A cancel request rather than a session.
    pub cancel: bool,
    /// Why the upstream server could not be reached, if it could not.
    pub upstream_error: Option<String>,
}

impl ConnectionRecord {
    /// A startup parameter, e.g. `database`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.startup
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// One line for a report: `#3 db=postgres app=seedbed::…`.
    pub fn describe(&self) -> String {
        let mut s = format!("#{}", self.number);
        if let Some(error) = &self.upstream_error {
            s.push_str(&format!(" upstream unreachable: {error}"));
        } else if self.cancel {
            s.push_str(" cancel request");
        } else if self.tls {
            s.push_str(" (TLS: parameters not visible)");
        } else if self.startup.is_empty() {
            s.push_str(" closed before sending a startup message");
        } else {
            s.push_str(&format!(" db={}", self.param("database").unwrap_or("?")));
            if let Some(app) = self.param("application_name") {
                s.push_str(&format!(" app={app}"));
            }
        }
        s
    }
}

struct Shared {
    stop: AtomicBool,
    open: AtomicUsize,
    records: Mutex<Vec<ConnectionRecord>>,
}

impl Shared {
    fn update(&self, index: usize, f: impl FnOnce(&mut ConnectionRecord)) {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(record) = records.get_mut(index) {
            f(record);
        }
    }
}

/// A TCP proxy on 127.0.0.1 that forwards to one upstream address and records every connection
/// it accepts. See the module docs.
pub struct CountingProxy {
    addr: SocketAddr,
    upstream: Vec<SocketAddr>,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl CountingProxy {
    /// Starts a proxy to `upstream` (e.g. `("127.0.0.1", 5432)`) on a free port of 127.0.0.1.
    pub fn start(upstream: impl ToSocketAddrs) -> io::Result<Self> {
        let upstream: Vec<SocketAddr> = upstream.to_socket_addrs()?.collect();
        if upstream.is_empty() {
            return Err(io::Error::other("the upstream address resolved to nothing"));
        }
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            open: AtomicUsize::new(0),
            records: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let (shared, upstream) = (Arc::clone(&shared), upstream.clone());
            std::thread::Builder::new()
                .name("counting-proxy".into())
                .spawn(move || accept_loop(&listener, &upstream, &shared))?
        };
        Ok(Self {
            addr,
            upstream,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The port the proxy listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The addresses connections are forwarded to.
    pub fn upstream(&self) -> &[SocketAddr] {
        &self.upstream
    }

    /// How many connections the proxy has accepted so far.
    pub fn accepted(&self) -> usize {
        self.lock().len()
    }

    /// How many accepted connections are still open.
    pub fn open(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Every connection accepted so far, in order (`records()[n..]` are those after the first n).
    pub fn records(&self) -> Vec<ConnectionRecord> {
        self.lock().clone()
    }

    /// Waits until no connection is open (the client side of every one has gone), for at most
    /// `timeout`; whether it got there.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let started = Instant::now();
        loop {
            if self.open() == 0 {
                return true;
            }
            if started.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ConnectionRecord>> {
        self.shared
            .records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor blocked in accept().
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, upstream: &[SocketAddr], shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let index = {
            let mut records = shared
                .records
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let index = records.len();
            records.push(ConnectionRecord {
                number: index + 1,
                ..ConnectionRecord::default()
            });
            index
        };
        shared.open.fetch_add(1, Ordering::SeqCst);
        let spawned = std::thread::Builder::new()
            .name(format!("counting-proxy-{}", index + 1))
            .spawn({
                let (shared, upstream) = (Arc::clone(shared), upstream.to_vec());
                move || {
                    forward(client, &upstream, &shared, index);
                    shared.open.fetch_sub(1, Ordering::SeqCst);
                }
            });
        if let Err(e) = spawned {
            shared.update(index, |r| {
                r.upstream_error = Some(format!("no thread: {e}"))
            });
            shared.open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Forwards one connection both ways until both directions have ended.
fn forward(client: TcpStream, upstream: &[SocketAddr], shared: &Arc<Shared>, index: usize) {
    let server = match TcpStream::connect(upstream) {
        Ok(server) => server,
        Err(e) => {
            shared.update(index, |r| r.upstream_error = Some(e.to_string()));
            return;
        }
    };
    // The protocol's messages are small and answered one by one: no Nagle delays.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(client_read), Ok(server_write)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let upward = {
        let shared = Arc::clone(shared);
        std::thread::spawn(move || {
            let (mut from, mut to) = (client_read, server_write);
            let _ = read_startup(&mut from, &mut to, &shared, index)
                .and_then(|()| io::copy(&mut from, &mut to));
            let _ = to.shutdown(Shutdown::Write);
        })
    };
    let (mut from, mut to) = (server, client);
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
    let _ = upward.join();
}

/// Forwards the client's first messages while reading its startup parameters into the record:
/// an SSLRequest or GSSENCRequest may come first, then either TLS (nothing more to read) or the
/// startup message. Anything unexpected is forwarded as is and parsing stops.
fn read_startup(
    from: &mut TcpStream,
    to: &mut TcpStream,
    shared: &Shared,
    index: usize,
) -> io::Result<()> {
    loop {
        let mut head = [0u8; 4];
        from.read_exact(&mut head)?;
        if head[0] == TLS_HANDSHAKE {
            shared.update(index, |r| r.tls = true);
            return to.write_all(&head);
        }
        let len = u32::from_be_bytes(head) as usize;
        if !(8..=64 * 1024).contains(&len) {
            return to.write_all(&head);
        }
        let mut body = vec![0u8; len - 4];
        from.read_exact(&mut body)?;
        to.write_all(&head)?;
        to.write_all(&body)?;
        let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        match code {
            SSL_REQUEST | GSSENC_REQUEST => continue,
            CANCEL_REQUEST => {
                shared.update(index, |r| r.cancel = true);
                return Ok(());
            }
            _ => {
                let params = startup_params(&body[4..]);
                shared.update(index, |r| r.startup = params);
                return Ok(());
            }
        }
    }
}

/// The `name\0value\0…\0` pairs of a startup message.
fn startup_params(bytes: &[u8]) -> Vec<(String, String)> {
    let mut fields = bytes
        .split(|b| *b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned());
    let mut params = Vec::new();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        if name.is_empty() {
            break;
        }
        params.push((name, value));
    }
    params
}
