//! A software TPM (swtpm) per test, on loopback, with a fresh state directory, killed when the
//! handle is dropped (also when the test panics); and tpm2-tools run against it.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How many times to look for two free ports and start swtpm on them.
const START_ATTEMPTS: usize = 20;
/// How long one swtpm may take to listen.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a tpm2-tools command may run.
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);
/// The poll interval while waiting.
const POLL: Duration = Duration::from_millis(20);

/// Serializes picking ports and binding them within this test process: tests run in parallel,
/// and a swtpm that lost a port race must never look ready because another test's listener
/// answers on the port it failed to bind.
static PORTS: Mutex<()> = Mutex::new(());

/// A running swtpm.
pub struct Swtpm {
    child: Child,
    port: u16,
    state: TempDir,
}

impl Swtpm {
    /// Starts a swtpm on two free loopback ports, or returns `None` when the `swtpm` binary is
    /// not installed (a failure under CI, see `peers`). Panics if it cannot be started for
    /// another reason.
    pub fn start() -> Option<Self> {
        if !crate::peers::runs("swtpm", &["--version"]) {
            crate::peers::missing("`swtpm` is not installed (Debian: swtpm swtpm-tools)");
            return None;
        }
        let _ports = PORTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let Some(port) = free_port_pair() else { continue };
            match Self::spawn(port) {
                Ok(swtpm) => return Some(swtpm),
                Err(why) => failures.push(why),
            }
        }
        panic!("could not start swtpm: {failures:?}");
    }

    fn spawn(port: u16) -> Result<Self, String> {
        let state = TempDir::new().map_err(|e| e.to_string())?;
        let dir = state.path().display().to_string();
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2"])
            .args(["--server", &format!("type=tcp,port={port},bindaddr=127.0.0.1")])
            .args(["--ctrl", &format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1)])
            .args(["--flags", "not-need-init,startup-clear"])
            .args(["--tpmstate", &format!("dir={dir}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        // From here on `Drop` kills the process, whatever happens.
        let mut swtpm = Self { child, port, state };
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = swtpm.child.try_wait() {
                return Err(format!("swtpm on port {port} exited: {status}"));
            }
            let ready = |p: u16| TcpStream::connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, p)).is_ok();
            if ready(port + 1) && ready(port) && matches!(swtpm.child.try_wait(), Ok(None)) {
                return Ok(swtpm);
            }
            thread::sleep(POLL);
        }
        Err(format!("swtpm on port {port} did not listen within {READY_TIMEOUT:?}"))
    }

    /// The TCTI configuration of this swtpm, in tpm2-tools syntax.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// A scratch directory that lives as long as the swtpm.
    pub fn dir(&self) -> &Path {
        self.state.path()
    }

    /// `dir()/name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.state.path().join(name)
    }

    /// Runs a tpm2-tools command against this swtpm; panics if it cannot run or times out.
    pub fn tool(&self, tool: &str, args: &[&str]) -> Output {
        let mut child = Command::new(tool)
            .args(args)
            .env("TPM2TOOLS_TCTI", self.tcti())
            .env("TSS2_LOG", "all+none")
            .current_dir(self.dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
        let deadline = Instant::now() + TOOL_TIMEOUT;
        loop {
            if child.try_wait().unwrap().is_some() {
                return child.wait_with_output().unwrap();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{tool} {args:?} timed out");
            }
            thread::sleep(POLL);
        }
    }

    /// Runs a tpm2-tools command and panics, with its output, unless it succeeds.
    pub fn tool_ok(&self, tool: &str, args: &[&str]) -> Output {
        let output = self.tool(tool, args);
        assert!(
            output.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// The transient handles loaded in the TPM (`tpm2_getcap handles-transient`), which every
    /// test must leave empty.
    pub fn transient_handles(&self) -> String {
        let output = self.tool_ok("tpm2_getcap", &["handles-transient"]);
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Resets the TPM as a reboot does (`TPM_Init`, then `TPM2_Startup(CLEAR)`): transient
    /// objects, saved contexts and PCR values are gone; key blobs still load.
    pub fn reset(&self) {
        let ctrl = format!("127.0.0.1:{}", self.port + 1);
        let output = self.tool("swtpm_ioctl", &["--tcp", &ctrl, "-i"]);
        assert!(output.status.success(), "swtpm_ioctl -i: {}", String::from_utf8_lossy(&output.stderr));
        self.tool_ok("tpm2_startup", &["-c"]);
    }

    /// Flushes every transient object (tpm2-tools leave the objects they load behind when no
    /// resource manager runs).
    pub fn flush_transient(&self) {
        self.tool_ok("tpm2_flushcontext", &["-t"]);
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP relay in front of a swtpm (both its ports) that records every byte either way.
pub struct RecordingProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<u8>>>,
    threads: Vec<JoinHandle<()>>,
}

/// How long a proxy relays at most, and how many connections per port it accepts (the swtpm
/// TCTI connects once per command).
const PROXY_LIFETIME: Duration = Duration::from_secs(60);
const PROXY_CONNECTIONS: usize = 4096;

impl RecordingProxy {
    /// Relays `127.0.0.1:p` and `p + 1` to the ports of `swtpm`.
    pub fn new(swtpm: &Swtpm) -> Self {
        let _ports = PORTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (listeners, port) = (0..START_ATTEMPTS)
            .find_map(|_| {
                let first = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).ok()?;
                let port = first.local_addr().ok()?.port();
                let second = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port.checked_add(1)?)).ok()?;
                Some(([first, second], port))
            })
            .expect("no two free ports for the proxy");
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let threads = listeners
            .into_iter()
            .zip([swtpm.port, swtpm.port + 1])
            .map(|(listener, target)| {
                let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
                thread::spawn(move || accept_loop(&listener, target, &stop, &seen))
            })
            .collect();
        Self { port, stop, seen, threads }
    }

    /// The TCTI configuration that goes through the proxy.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Every byte relayed so far, both directions, in order of arrival.
    pub fn seen(&self) -> Vec<u8> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, target: u16, stop: &Arc<AtomicBool>, seen: &Arc<Mutex<Vec<u8>>>) {
    let deadline = Instant::now() + PROXY_LIFETIME;
    let mut relays: Vec<JoinHandle<()>> = Vec::new();
    listener.set_nonblocking(true).unwrap();
    let mut accepted = 0;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline && accepted < PROXY_CONNECTIONS {
        relays.retain(|relay| !relay.is_finished());
        match listener.accept() {
            Ok((client, _)) => {
                accepted += 1;
                let Ok(server) = TcpStream::connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, target)) else { continue };
                for (from, to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)] {
                    let (stop, seen) = (Arc::clone(stop), Arc::clone(seen));
                    relays.push(thread::spawn(move || relay(from, to, &stop, &seen, deadline)));
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(POLL),
            Err(_) => break,
        }
    }
    stop.store(true, Ordering::SeqCst);
    for relay in relays {
        let _ = relay.join();
    }
}

fn relay(mut from: TcpStream, mut to: TcpStream, stop: &AtomicBool, seen: &Mutex<Vec<u8>>, deadline: Instant) {
    from.set_nonblocking(false).unwrap();
    from.set_read_timeout(Some(POLL)).unwrap();
    let mut buffer = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                seen.lock().unwrap().extend_from_slice(&buffer[..n]);
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// A port `p` such that `p` and `p + 1` were both free a moment ago.
fn free_port_pair() -> Option<u16> {
    let first = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).ok()?;
    let port = first.local_addr().ok()?.port();
    let second = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port.checked_add(1)?)).ok()?;
    drop((first, second));
    Some(port)
}
