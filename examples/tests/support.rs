//! Running the `mesh-proxy` binary as a subprocess.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `mesh-proxy` process whose stdout lines arrive on a channel.
pub(crate) struct ProxyProcess {
    pub(crate) child: Child,
    pub(crate) lines: mpsc::Receiver<String>,
}

impl ProxyProcess {
    pub(crate) fn spawn(args: &[&str]) -> Self {
        Self::spawn_with(args, Stdio::null())
    }

    /// As [`ProxyProcess::spawn`], with stdin piped ([`ProxyProcess::send_line`]).
    pub(crate) fn spawn_piped(args: &[&str]) -> Self {
        Self::spawn_with(args, Stdio::piped())
    }

    /// As [`ProxyProcess::spawn`], with at most `files` open file descriptors (`ulimit -n`).
    pub(crate) fn spawn_with_fd_limit(files: u32, args: &[&str]) -> Self {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("ulimit -n {files} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_mesh-proxy"))
            .args(args);
        Self::spawn_command(cmd, Stdio::null())
    }

    /// Another binary of the package (`env!("CARGO_BIN_EXE_mesh-pilot")`), its stdout lines
    /// read the same way.
    pub(crate) fn spawn_program(program: &str, args: &[&str]) -> Self {
        let mut cmd = Command::new(program);
        cmd.args(args);
        Self::spawn_command(cmd, Stdio::null())
    }

    fn spawn_with(args: &[&str], stdin: Stdio) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mesh-proxy"));
        cmd.args(args);
        Self::spawn_command(cmd, stdin)
    }

    fn spawn_command(mut cmd: Command, stdin: Stdio) -> Self {
        let mut child = cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start mesh-proxy");
        let stdout: ChildStdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// Reads lines until one satisfies `f`, returning every line read. Fails after 60 s
    /// (a readiness signal that never comes), never sleeps to synchronise.
    pub(crate) fn read_until(&self, mut f: impl FnMut(&str) -> bool) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(l) => {
                    let done = f(&l);
                    seen.push(l);
                    if done {
                        return seen;
                    }
                }
                Err(e) => {
                    panic!("mesh-proxy did not print the expected line ({e}); saw: {seen:#?}")
                }
            }
        }
    }

    /// Waits for `ready` and returns the address of the listener named `name`.
    pub(crate) fn wait_ready(&self, name: &str) -> (SocketAddr, Vec<String>) {
        let lines = self.read_until(|l| l == "mesh-proxy: ready");
        let prefix = format!("mesh-proxy: listener {name} on ");
        let addr = lines
            .iter()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no listener line in {lines:#?}"))
            .parse()
            .expect("listener address");
        (addr, lines)
    }

    /// Writes a line to the process's stdin (spawned with [`ProxyProcess::spawn_piped`]).
    pub(crate) fn send_line(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("stdin is piped");
        writeln!(stdin, "{line}").expect("write to stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Sends SIGTERM and waits for the exit status.
    pub(crate) fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        self.child.wait().expect("wait for mesh-proxy")
    }

    /// The CPU time the process has used (user and system), in clock ticks.
    pub(crate) fn cpu_ticks(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("read /proc stat");
        // Fields after the command name (which may hold spaces) start at its closing paren;
        // utime and stime are fields 14 and 15 of the whole line.
        let rest = &s[s.rfind(')').expect("comm in /proc stat") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    /// A field of /proc/PID/status in KiB (VmRSS, VmHWM).
    pub(crate) fn proc_kib(&self, field: &str) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc status");
        s.lines()
            .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `text` to a fresh file in the temp dir and returns its path.
pub(crate) fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mesh-examples-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write temp file");
    path
}

/// Polls `check` until it is true, failing after `limit` (a readiness wait with a deadline,
/// for changes the test cannot be signalled about: a file watcher's next pass).
pub(crate) async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The shared conformance data's subdirectory `which` (see its README), next to the
/// workspace. `None` (after a notice) when it is missing outside CI; on CI (`CI=true`) a
/// missing directory fails the test.
pub(crate) fn conformance_dir(which: &str) -> Option<std::path::PathBuf> {
    let dir = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/conformance"
    ))
    .join(which);
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "conformance data missing at {} (required in CI)",
        dir.display()
    );
    eprintln!(
        "notice: {} not found; skipping the tests on it",
        dir.display()
    );
    None
}
