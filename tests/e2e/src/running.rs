//! A `latchkey` process left running (a device sign-in waiting for its user), and the browser
//! "user" who approves its code on another device.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use crate::{Run, Sandbox, root};

/// `latchkey ARGS` started in the background; its stderr arrives line by line.
#[derive(Debug)]
pub struct Running {
    pub child: Child,
    lines: Receiver<String>,
    stderr: Vec<String>,
}

impl Running {
    pub fn start(sb: &Sandbox, args: &[&str]) -> Self {
        let mut child = sb
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            stderr: Vec::new(),
        }
    }

    /// The first stderr line (from now) that `pred` accepts; panics after 30 s.
    pub fn wait_line(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stderr.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no such line on stderr; so far:\n{}",
                    self.stderr.join("\n")
                ),
            }
        }
    }

    /// The device sign-in's notice: (verification_uri, user_code, verification_uri_complete).
    pub fn device_codes(&mut self) -> (String, String, String) {
        let intro = self.wait_line(|l| l.starts_with("To sign in, open "));
        let uri = intro
            .strip_prefix("To sign in, open ")
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_owned();
        let code = self.wait_line(|l| !l.trim().is_empty()).trim().to_owned();
        self.wait_line(|l| l.starts_with("Or open this link"));
        let complete = self.wait_line(|l| !l.trim().is_empty()).trim().to_owned();
        (uri, code, complete)
    }

    /// Waits for the exit (at most `within`), then returns it with all of stdout and stderr.
    pub fn finish(mut self, within: Duration) -> Run {
        let started = Instant::now();
        loop {
            if self.child.try_wait().unwrap().is_some() {
                break;
            }
            if started.elapsed() > within {
                let _ = self.child.kill();
                panic!(
                    "latchkey still running after {within:?}; stderr:\n{}",
                    self.stderr.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = self.child.wait_with_output().unwrap();
        let mut run = Run::new(out, started.elapsed());
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.stderr.push(line);
        }
        run.stderr = self.stderr.join("\n");
        run
    }

    /// TCP sockets the process listens on, from /proc: its socket inodes in LISTEN state.
    pub fn listening_sockets(&self) -> usize {
        let pid = self.child.id();
        let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter_map(|l| {
                let l = l.to_string_lossy().into_owned();
                Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
            })
            .collect();
        ["tcp", "tcp6"]
            .iter()
            .flat_map(|t| {
                std::fs::read_to_string(format!("/proc/{pid}/net/{t}"))
                    .unwrap_or_default()
                    .lines()
                    .skip(1)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.get(3) == Some(&"0A") && f.get(9).is_some_and(|i| inodes.iter().any(|x| x == i))
            })
            .count()
    }
}

/// The browser "user" approving (or aborting) a device code, as a person on another device would:
/// its own launches are logged apart from the sandbox's `$BROWSER`.
pub fn approve_device(sb: &Sandbox, url: &str, env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new("node");
    cmd.arg(root().join("tests/browser/driver.mjs"))
        .arg(url)
        .env("DRIVER_LOG", sb.dir.path().join("user-device.log"))
        .env(
            "DRIVER_SCREENSHOT_DIR",
            sb.dir.path().join("user-device-shots"),
        )
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
