//! Child processes that must never outlive us, free ports, scratch dirs, and
//! bounded polling: the plumbing under [`crate::stack`].

use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a daemon gets to exit after SIGTERM before its group is SIGKILLed.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// Pause between two readiness probes.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A server process in its own process group, stopped (with its whole group) on drop.
///
/// Its own group keeps a terminal's Ctrl-C from killing it behind our back (we
/// stop it in order instead), and lets us kill anything it forked. On Linux it
/// also gets SIGKILL if the thread that started it dies, so even a `kill -9` of
/// the test binary leaves nothing running.
pub(crate) struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `cmd` with stdout and stderr going to `log`.
    pub(crate) fn spawn(name: &'static str, mut cmd: Command, log: &Path) -> io::Result<Daemon> {
        let out = File::create(log)?;
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0);
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start {name}: {e}")))?;
        Ok(Daemon {
            name,
            child,
            log: log.to_path_buf(),
        })
    }

    /// Fails (with the end of its log) if the process has already exited.
    pub(crate) fn ensure_running(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "{} exited ({status}); log:\n{}",
                self.name,
                self.log_tail()
            )),
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }

    /// The last few KB of the log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        log_tail(&self.log, 4096)
    }

    /// Asks the group to stop, waits a little, then kills it.
    fn stop(&mut self) {
        let group = self.child.id() as libc::pid_t;
        if matches!(self.child.try_wait(), Ok(None)) {
            signal_group(group, libc::SIGTERM);
            let deadline = Instant::now() + STOP_GRACE;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Also reaches anything the daemon forked, whether or not it exited on its own.
        signal_group(group, libc::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal_group(group: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; a negative pid names a process group.
    unsafe {
        libc::kill(-group, signal);
    }
}

/// Linux only: have the kernel SIGKILL the child when the thread that spawned it dies.
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: getpid is async-signal-safe, read before fork.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure only calls async-signal-safe functions (prctl, getppid)
    // and allocates nothing, as required between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                return Err(io::Error::other("parent exited during spawn"));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut Command) {}

/// The last `max` bytes of a file, lossily decoded.
pub(crate) fn log_tail(path: &Path, max: u64) -> String {
    let read = || -> io::Result<String> {
        let mut f = File::open(path)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(max)))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    read().unwrap_or_else(|e| format!("(no log at {}: {e})", path.display()))
}

/// `n` distinct free TCP ports on 127.0.0.1. All are held until all are chosen,
/// so they differ; another process could still take one before we bind it.
pub(crate) fn free_ports(n: usize) -> io::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)))
        .collect::<io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// A fresh directory under the system temp dir, removed with everything in it on drop.
pub(crate) struct ScratchDir(PathBuf);

impl ScratchDir {
    pub(crate) fn new(prefix: &str) -> io::Result<ScratchDir> {
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir(&path)?;
        Ok(ScratchDir(path))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Retries `probe` every 100 ms until it succeeds or `timeout` passes; fails early
/// if `alive` reports that the server under test is gone.
pub(crate) async fn poll<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut alive: impl FnMut() -> Result<(), String>,
    mut probe: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        alive()?;
        let left = deadline.saturating_duration_since(Instant::now());
        let last = match tokio::time::timeout(left.max(POLL_INTERVAL), probe()).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => e,
            Err(_) => "probe timed out".to_string(),
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "{what}: not ready after {}s; last error: {last}",
                timeout.as_secs()
            ));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct() {
        let ports = free_ports(4).unwrap();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 4);
    }

    #[test]
    fn scratch_dir_is_removed_on_drop() {
        let dir = ScratchDir::new("partwise-test").unwrap();
        let path = dir.path().to_path_buf();
        std::fs::write(path.join("f"), b"x").unwrap();
        drop(dir);
        assert!(!path.exists());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn daemon_group_is_killed_on_drop() {
        let dir = ScratchDir::new("partwise-test").unwrap();
        let mut cmd = Command::new("sh");
        // The grandchild `sleep` must die too: it is in the daemon's group.
        cmd.args([
            "-c",
            "sleep 300 & echo $! > \"$0\"; wait",
            &dir.path().join("pid").to_string_lossy(),
        ]);
        let mut d = Daemon::spawn("sh", cmd, &dir.path().join("log")).unwrap();
        let pid_file = dir.path().join("pid");
        let start = Instant::now();
        while !pid_file.exists() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let grandchild: libc::pid_t = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        d.ensure_running().unwrap();
        drop(d);
        // Killed, it may linger as a zombie until init reaps it: that counts as gone.
        let running = || {
            std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, rest)| rest.trim_start().starts_with(['R', 'S', 'D']))
                })
                .unwrap_or(false)
        };
        let start = Instant::now();
        while running() && start.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!running(), "grandchild {grandchild} survived");
    }

    #[tokio::test]
    async fn poll_gives_up_with_the_last_error() {
        let err = poll(
            "thing",
            Duration::from_millis(250),
            || Ok(()),
            || async { Err::<(), _>("nope".to_string()) },
        )
        .await
        .unwrap_err();
        assert!(err.contains("thing") && err.contains("nope"), "{err}");
        let err = poll(
            "thing",
            Duration::from_secs(5),
            || Err("died".into()),
            || async { Ok(()) },
        )
        .await
        .unwrap_err();
        assert_eq!(err, "died");
    }
}
