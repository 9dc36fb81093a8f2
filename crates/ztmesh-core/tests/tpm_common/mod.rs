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

    /// [`Swtpm::start`] for a TPM manufactured by `swtpm_setup --create-ek-cert
    /// --create-platform-cert`: its RSA 2048 and ECC EKs are certified by a fresh
    /// `swtpm_localca` CA of its own (the test's "manufacturer"), in [`Swtpm::ek_ca_dir`]:
    /// `swtpm-localca-rootca-cert.pem` (root) and `issuercert.pem` (the CA that signs the EK
    /// certificates). `None` when swtpm_setup is not installed (a failure under CI).
    pub fn start_with_ek() -> Option<Self> {
        if !crate::peers::runs("swtpm_setup", &["--print-capabilities"]) {
            crate::peers::missing("`swtpm_setup` is not installed (Debian: swtpm-tools)");
            return None;
        }
        let _ports = PORTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let state = TempDir::new().unwrap();
        manufacture(state.path());
        let mut failures = Vec::new();
        let mut state = Some(state);
        for _ in 0..START_ATTEMPTS {
            let Some(port) = free_port_pair() else { continue };
            match Self::spawn_in(port, state.take().unwrap()) {
                Ok(swtpm) => return Some(swtpm),
                Err((why, dir)) => {
                    failures.push(why);
                    state = Some(dir);
                }
            }
        }
        panic!("could not start swtpm: {failures:?}");
    }

    /// The directory of the local EK CA of a TPM started by [`Swtpm::start_with_ek`].
    pub fn ek_ca_dir(&self) -> PathBuf {
        self.state.path().join("localca")
    }

    fn spawn(port: u16) -> Result<Self, String> {
        let state = TempDir::new().map_err(|e| e.to_string())?;
        Self::spawn_in(port, state).map_err(|(why, _)| why)
    }

    fn spawn_in(port: u16, state: TempDir) -> Result<Self, (String, TempDir)> {
        let dir = state.path().join("tpm").display().to_string();
        if let Err(e) = std::fs::create_dir_all(&dir) {
            return Err((e.to_string(), state));
        }
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2"])
            .args(["--server", &format!("type=tcp,port={port},bindaddr=127.0.0.1")])
            .args(["--ctrl", &format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1)])
            .args(["--flags", "not-need-init,startup-clear"])
            .args(["--tpmstate", &format!("dir={dir}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) => return Err((e.to_string(), state)),
        };
        let mut child = child;
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut failure = format!("swtpm on port {port} did not listen within {READY_TIMEOUT:?}");
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                failure = format!("swtpm on port {port} exited: {status}");
                break;
            }
            let ready = |p: u16| TcpStream::connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, p)).is_ok();
            if ready(port + 1) && ready(port) && matches!(child.try_wait(), Ok(None)) {
                // From here on `Drop` kills the process, whatever happens.
                return Ok(Self { child, port, state });
            }
            thread::sleep(POLL);
        }
        let _ = child.kill();
        let _ = child.wait();
        Err((failure, state))
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

/// Runs `swtpm_setup` to manufacture a TPM state in `root/tpm`, its EK certificates signed by
/// a fresh local CA in `root/localca` (configuration files of its own, so nothing depends on
/// the machine's `/var/lib/swtpm-localca`).
fn manufacture(root: &Path) {
    let (tpm, ca) = (root.join("tpm"), root.join("localca"));
    std::fs::create_dir_all(&tpm).unwrap();
    std::fs::create_dir_all(&ca).unwrap();
    let localca_conf = root.join("swtpm-localca.conf");
    let ca_path = ca.display();
    std::fs::write(
        &localca_conf,
        format!(
            "statedir = {ca_path}\nsigningkey = {ca_path}/signkey.pem\nissuercert = {ca_path}/issuercert.pem\ncertserial = {ca_path}/certserial\n"
        ),
    )
    .unwrap();
    let options = root.join("swtpm-localca.options");
    std::fs::write(&options, "--platform-manufacturer ztmesh\n--platform-version 2.1\n--platform-model test\n")
        .unwrap();
    let setup_conf = root.join("swtpm_setup.conf");
    std::fs::write(
        &setup_conf,
        format!(
            "create_certs_tool = swtpm_localca\ncreate_certs_tool_config = {}\ncreate_certs_tool_options = {}\nactive_pcr_banks = sha256\n",
            localca_conf.display(),
            options.display()
        ),
    )
    .unwrap();
    let output = Command::new("swtpm_setup")
        .args(["--tpm2", "--create-ek-cert", "--create-platform-cert", "--overwrite"])
        .arg("--tpmstate")
        .arg(&tpm)
        .arg("--config")
        .arg(&setup_conf)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run swtpm_setup");
    assert!(
        output.status.success(),
        "swtpm_setup failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A port `p` such that `p` and `p + 1` were both free a moment ago.
fn free_port_pair() -> Option<u16> {
    let first = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).ok()?;
    let port = first.local_addr().ok()?.port();
    let second = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port.checked_add(1)?)).ok()?;
    drop((first, second));
    Some(port)
}
