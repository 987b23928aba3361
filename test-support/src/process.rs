//! A service binary run as a child process, the way a container or the launcher runs it:
//! started with a given environment, probed until ready, stopped with SIGTERM.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port for a process to listen on, free now and reserved for this test process.
///
/// It is drawn at random below the kernel's ephemeral range (32768 and up), where client
/// connections and `bind(0)` take their ports: a port from that range could be taken by a
/// connection of a test running in parallel before the process gets to bind it. Tests run in
/// processes of their own (nextest), so a port that was free a moment ago may also be drawn by
/// another test before this one's process binds it: each drawn port is reserved with a lock
/// on a file named after it, held until this test process exits (the kernel drops the lock
/// then, whatever the way it ends), and a port whose lock is held elsewhere is not drawn.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    static RESERVED: std::sync::Mutex<Vec<std::fs::File>> = std::sync::Mutex::new(Vec::new());
    let directory = std::env::temp_dir().join("stack-test-ports");
    std::fs::create_dir_all(&directory).expect("a directory for port reservations");
    loop {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as u64,
        );
        let port = 20_000 + (hasher.finish() % 12_000) as u16;
        let reservation = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(directory.join(port.to_string()))
            .expect("a port reservation file");
        if reservation.try_lock().is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            RESERVED.lock().unwrap().push(reservation);
            return port;
        }
    }
}

pub struct ServiceProcess {
    child: Child,
    /// What the process wrote, drained as it writes: an undrained pipe fills up and blocks
    /// the process on its next log line.
    stdout: Output,
    stderr: Output,
}

type Output = std::sync::Arc<std::sync::Mutex<String>>;

fn drain(pipe: Option<impl Read + Send + 'static>) -> Output {
    let output = Output::default();
    if let Some(mut pipe) = pipe {
        let sink = std::sync::Arc::clone(&output);
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(read) = pipe.read(&mut chunk) {
                if read == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..read]));
            }
        });
    }
    output
}

/// How a process ended.
pub struct Exit {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl ServiceProcess {
    /// Starts `binary` with only `PATH` and `envs` in its environment.
    pub fn spawn(binary: &str, envs: &[(&str, String)]) -> Self {
        Self::spawn_with(binary, &[], envs)
    }

    /// The same, with `args`.
    pub fn spawn_with(binary: &str, args: &[&str], envs: &[(&str, String)]) -> Self {
        let mut child = Command::new(binary)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(envs.iter().map(|(key, value)| (*key, value.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {binary}: {error}"));
        let (stdout, stderr) = (drain(child.stdout.take()), drain(child.stderr.take()));
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// Polls `url` until it answers 2xx, or panics after 30 s.
    pub async fn wait_until_ready(&mut self, url: &str) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("the process status") {
                std::thread::sleep(Duration::from_millis(100));
                let stderr = self.stderr.lock().unwrap().clone();
                panic!("the process exited with {status} before {url} was ready:\n{stderr}");
            }
            if let Ok(response) = client.get(url).send().await
                && response.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{url} was not ready within 30 s");
    }

    /// The process id, for `/proc/<pid>/...`.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, as an orchestrator stopping a container does.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits at most `timeout` for the exit (killing the process after that, and panicking).
    pub async fn wait(mut self, timeout: Duration) -> Exit {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("the process status") {
                // Let the drains reach the end of the pipes.
                std::thread::sleep(Duration::from_millis(100));
                return Exit {
                    code: status.code(),
                    stdout: self.stdout.lock().unwrap().clone(),
                    stderr: self.stderr.lock().unwrap().clone(),
                };
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the process did not exit within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A service running inside the test process on a thread of its own (its own runtime and
/// telemetry, as its binary runs it), stopped gracefully by [`InProcess::stop`] or on drop.
pub struct InProcess {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Completes when the test stops the service.
pub type Stopped = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

impl InProcess {
    /// Runs `service` on a new thread; it must return once the future it is given completes.
    pub fn start(service: impl FnOnce(Stopped) + Send + 'static) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            service(Box::pin(async move {
                let _ = stopped.await;
            }))
        });
        Self {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Stops the service and waits until it has finished (its last spans flushed).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            tokio::task::spawn_blocking(move || thread.join().expect("the service panicked"))
                .await
                .unwrap();
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Polls `url` until it answers 2xx, or panics after `timeout`.
pub async fn wait_until_ready(url: &str, timeout: Duration) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(response) = client.get(url).send().await
            && response.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} was not ready within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_is_not_drawn_again_while_it_is_reserved() {
        // Two thousand draws from twelve thousand ports would repeat one almost surely (about
        // 166 pairs expected) if a port were only checked free, not reserved.
        let drawn: Vec<u16> = (0..2000).map(|_| free_port()).collect();
        let distinct: std::collections::BTreeSet<&u16> = drawn.iter().collect();
        assert_eq!(distinct.len(), drawn.len());
    }
}
