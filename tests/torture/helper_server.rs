//! The Python servers the torture run drives (tests/stripe, tests/mail): run
//! from their own venv, each prints one JSON line of the ports it listens on.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::Context;
use serde_json::Value;

/// Starts `script` of `dir` (canonical; `flag` names the option that gave it)
/// with the venv's Python, logging to `log`; answers the process and its ports.
pub fn start(dir: &Path, flag: &str, script: &str, log: &Path) -> anyhow::Result<(Child, Value)> {
    let dir = &dir.canonicalize().with_context(|| format!("{} ({flag})", dir.display()))?;
    let python = dir.join(".venv/bin/python");
    anyhow::ensure!(python.is_file(), "no {} (run {}/setup.sh)", python.display(), dir.display());
    let mut child = Command::new(&python)
        .arg(dir.join(script))
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?)
        .spawn()
        .with_context(|| format!("running {}", python.display()))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("the server's stdout")?).read_line(&mut line)?;
    let ports =
        serde_json::from_str(&line).with_context(|| format!("{script} did not start (see {})", log.display()))?;
    Ok((child, ports))
}
