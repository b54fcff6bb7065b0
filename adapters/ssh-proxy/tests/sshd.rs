//! Against a real OpenSSH server: `/usr/sbin/sshd -D -e` started by each
//! test on a free loopback port, with a generated host key and client key.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use halyard_ssh_proxy::{SshError, SshProxy, TargetConfig};

/// A private sshd.
struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    client_key: PathBuf,
    host_fingerprint: String,
    user: String,
}

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "halyard-test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen (openssh-client) is installed");
    assert!(st.success());
}

use halyard_test_ports::free_port;

impl Sshd {
    fn start() -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let host_key = dir.path().join("host_ed25519");
        let client_key = dir.path().join("client_ed25519");
        keygen(&host_key);
        keygen(&client_key);
        std::fs::copy(
            client_key.with_extension("pub"),
            dir.path().join("authorized_keys"),
        )
        .unwrap();
        let fp = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(host_key.with_extension("pub"))
            .output()
            .unwrap();
        let host_fingerprint = String::from_utf8_lossy(&fp.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string();
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string();
        let mut sshd = Sshd {
            dir,
            port: free_port(),
            child: None,
            client_key,
            host_fingerprint,
            user,
        };
        sshd.spawn();
        sshd
    }

    fn spawn(&mut self) {
        let d = self.dir.path();
        let config = d.join("sshd_config");
        let mut f = std::fs::File::create(&config).unwrap();
        write!(
            f,
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\nLogLevel VERBOSE\n",
            port = self.port,
            d = d.display()
        )
        .unwrap();
        // sshd running as root wants its privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let child = Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
            .spawn()
            .expect("/usr/sbin/sshd (openssh-server) is installed");
        self.child = Some(child);
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "sshd did not listen: {}",
                std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// kill -9 of the listener and every session process under it.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pids = descendants(c.id());
            let _ = c.kill();
            let _ = c.wait();
            for p in pids {
                let _ = Command::new("kill").args(["-9", &p.to_string()]).status();
            }
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    fn target(&self) -> TargetConfig {
        TargetConfig {
            host: "127.0.0.1".into(),
            port: self.port,
            user: self.user.clone(),
            key: self.client_key.clone(),
            host_key: Some(self.host_fingerprint.clone()),
        }
    }

    fn proxy(&self) -> SshProxy {
        SshProxy::new([("np".to_string(), self.target())])
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every process below `pid` (from /proc).
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents = std::collections::HashMap::<u32, Vec<u32>>::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        if let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u32>().ok())
        {
            parents.entry(ppid).or_default().push(p);
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        for c in parents.get(&p).into_iter().flatten() {
            out.push(*c);
            stack.push(*c);
        }
    }
    out
}

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn runs_a_command_with_its_exit_status_and_output_and_reuses_the_session() {
    let sshd = Sshd::start();
    let p = sshd.proxy();
    let out = p
        .run("np", "echo hello; echo oops >&2; exit 3", T)
        .await
        .unwrap();
    assert_eq!(out.status, 3);
    assert_eq!(out.stdout, "hello\n");
    assert_eq!(out.stderr, "oops\n");
    // The same session serves the next calls: one login in sshd's log.
    for i in 0..3 {
        let out = p.run("np", &format!("echo {i}"), T).await.unwrap();
        assert_eq!((out.status, out.stdout), (0, format!("{i}\n")));
    }
    let log = std::fs::read_to_string(sshd.dir.path().join("sshd.log")).unwrap();
    assert_eq!(
        log.matches("Accepted publickey").count(),
        1,
        "one session reused for every call: {log}"
    );
    assert!(matches!(
        p.run("nope", "true", T).await,
        Err(SshError::UnknownTarget(_))
    ));
}

#[tokio::test]
async fn puts_a_file_atomically_creating_its_directory() {
    let sshd = Sshd::start();
    let p = sshd.proxy();
    let path = sshd.dir.path().join("remote/etc/app it's.conf");
    let contents = b"threshold = 5\nname = \"np 1\"\n".repeat(1000);
    p.put_file("np", path.to_str().unwrap(), &contents, T)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), contents);
    let out = p
        .run(
            "np",
            &format!(
                "wc -c < {}",
                halyard_ssh_proxy::quote(path.to_str().unwrap())
            ),
            T,
        )
        .await
        .unwrap();
    assert_eq!(out.stdout.trim(), contents.len().to_string());
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    // A path that cannot be written is an error naming it.
    let e = p
        .put_file("np", "/proc/halyard/nope.conf", b"x", T)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("/proc/halyard/nope.conf"), "{e}");
}

#[tokio::test]
async fn a_wrong_key_is_refused_with_a_clear_error() {
    let sshd = Sshd::start();
    let other = sshd.dir.path().join("other_ed25519");
    keygen(&other);
    let mut t = sshd.target();
    t.key = other.clone();
    let p = SshProxy::new([("np".to_string(), t)]);
    let e = p.run("np", "true", T).await.unwrap_err();
    assert!(matches!(e, SshError::Auth { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains(&format!("{}@127.0.0.1:{}", sshd.user, sshd.port))
            && text.contains("refused the key")
            && text.contains(other.to_str().unwrap()),
        "{text}"
    );
}

#[tokio::test]
async fn host_keys_are_pinned_or_trusted_on_first_use() {
    let sshd = Sshd::start();
    // A pinned fingerprint that is not the server's: refused before login.
    let mut t = sshd.target();
    t.host_key = Some("SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into());
    let p = SshProxy::new([("np".to_string(), t)]);
    let e = p.run("np", "true", T).await.unwrap_err();
    assert!(matches!(e, SshError::HostKey { .. }), "{e:?}");
    assert!(e.to_string().contains(&sshd.host_fingerprint), "{e}");
    // None pinned: the first key is accepted and learned.
    let mut t = sshd.target();
    t.host_key = None;
    let p = SshProxy::new([("np".to_string(), t)]);
    assert_eq!(p.run("np", "echo ok", T).await.unwrap().stdout, "ok\n");
    assert_eq!(
        p.fingerprint("np").as_deref(),
        Some(sshd.host_fingerprint.as_str())
    );
}

#[tokio::test]
async fn a_stalled_command_times_out_and_the_next_call_reconnects() {
    let sshd = Sshd::start();
    let p = sshd.proxy();
    let t0 = Instant::now();
    let e = p
        .run("np", "sleep 20", Duration::from_millis(800))
        .await
        .unwrap_err();
    assert!(
        matches!(e, SshError::Timeout { .. }),
        "{e:?}\nsshd's log:\n{}",
        sshd.log()
    );
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(p.run("np", "echo back", T).await.unwrap().stdout, "back\n");
}

#[tokio::test]
async fn a_connection_dropped_before_the_handshake_is_tried_again() {
    // A relay in front of sshd closes the first connection it accepts
    // unanswered (as sshd's MaxStartups early drop does) and relays the
    // next ones.
    let sshd = Sshd::start();
    let relay = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let relay_port = relay.local_addr().unwrap().port();
    let upstream = sshd.port;
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for conn in relay.incoming() {
            let Ok(down) = conn else { return };
            if count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                drop(down);
                continue;
            }
            let up = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
            let (mut d2, mut u2) = (down.try_clone().unwrap(), up.try_clone().unwrap());
            let (mut d, mut u) = (down, up);
            std::thread::spawn(move || std::io::copy(&mut d, &mut u));
            std::thread::spawn(move || std::io::copy(&mut u2, &mut d2));
        }
    });
    let mut t = sshd.target();
    t.port = relay_port;
    let p = SshProxy::new([("np".to_string(), t)]);
    assert_eq!(
        p.run("np", "echo through", T).await.unwrap().stdout,
        "through\n"
    );
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn sshd_killed_mid_operation_gives_an_error_not_a_hang_then_reconnects() {
    let mut sshd = Sshd::start();
    let p = sshd.proxy();
    assert_eq!(p.run("np", "echo up", T).await.unwrap().stdout, "up\n");
    let q = p.clone();
    let t0 = Instant::now();
    let running =
        tokio::spawn(async move { q.run("np", "sleep 30", Duration::from_secs(25)).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    sshd.kill();
    let r = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the call ends when the server dies, not at its deadline")
        .unwrap();
    let e = r.unwrap_err();
    assert!(
        !matches!(e, SshError::Timeout { .. }),
        "a dead server is not a timeout: {e:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(6));
    // While it is down: a connection error, at once.
    let e = p.run("np", "true", T).await.unwrap_err();
    assert!(matches!(e, SshError::Connect { .. }), "{e:?}");
    // Back on the same port: the proxy reconnects by itself.
    sshd.spawn();
    assert_eq!(
        p.run("np", "echo again", T).await.unwrap().stdout,
        "again\n"
    );
}
