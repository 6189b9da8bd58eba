//! Output conventions shared by every command: human text or `--output json`, exit codes, broken pipes.

use std::io::{self, Write};

use clap::ValueEnum;
use serde::Serialize;

/// How a command prints its result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// Text for people (the default).
    #[default]
    Human,
    /// One JSON document on stdout, for scripts. Schemas are documented in `docs/cli-json.md` and kept stable.
    Json,
}

/// Process exit codes (documented in `docs/cli.md`).
#[allow(dead_code)]
pub(crate) mod exit {
    /// Success.
    pub(crate) const OK: i32 = 0;
    /// The command failed (bad input, I/O, network, ...).
    pub(crate) const ERROR: i32 = 1;
    /// The command line was invalid (clap uses this code too).
    pub(crate) const USAGE: i32 = 2;
    /// The command ran, and the thing checked was refused (a signature, a quote, a policy).
    pub(crate) const REFUSED: i32 = 3;
}

/// Settings every command receives.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ctx {
    /// The selected output format.
    pub(crate) output: OutputFormat,
}

impl Ctx {
    /// Prints `value` as JSON (`--output json`) or runs `human` to print text.
    pub(crate) fn emit<T: Serialize>(
        &self,
        value: &T,
        human: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> anyhow::Result<()> {
        let stdout = io::stdout();
        let mut out = stdout.lock();
        match self.output {
            OutputFormat::Json => {
                serde_json::to_writer_pretty(&mut out, value)?;
                writeln!(out)?;
            }
            OutputFormat::Human => human(&mut out)?,
        }
        out.flush()?;
        Ok(())
    }

    /// True when the user asked for JSON.
    #[allow(dead_code)]
    pub(crate) fn json(&self) -> bool {
        self.output == OutputFormat::Json
    }
}

/// True when `err` (or one of its causes) is a broken pipe: `arca … | head` must exit quietly with 0.
pub(crate) fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
}
