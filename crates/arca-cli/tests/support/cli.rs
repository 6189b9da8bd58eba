//! What the command-line tests that run a coordinator process share: the `arca` command (with the launcher
//! stand-in the coordinator's enclave is made of), a free local port, a child process killed on drop and the
//! JSON of a command's output.

use std::net::TcpListener;
use std::process::{Child, Command, Output};

/// `arca`, with the launcher the coordinator's enclave is made of (ARCA_LAUNCHER).
pub(crate) fn arca() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_arca"));
    if let Some(l) = crate::support::launcher() {
        c.env("ARCA_LAUNCHER", l);
    }
    c
}

/// A port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process, killed and reaped when dropped (a failing test leaves no coordinator behind).
pub(crate) struct Running(pub(crate) Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The JSON a command printed on stdout; on anything else, a panic showing stdout and stderr.
pub(crate) fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
