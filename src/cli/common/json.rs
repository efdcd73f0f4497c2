//! The one JSON convention of every `--json` command: JSON Lines on stdout, one object per line,
//! and the last line is the result (progress lines, where a command has them, come before it).
//! Everything else a command says goes to stderr.

use anyhow::Context;
use serde::Serialize;

/// `v` as one line of JSON (compact: strings escape their newlines, so it never spans lines).
pub fn to_line<T: Serialize + ?Sized>(v: &T) -> anyhow::Result<String> {
    let s = serde_json::to_string(v).context("serialising JSON")?;
    debug_assert!(!s.contains('\n'), "compact JSON is one line");
    Ok(s)
}

/// Print `v` as one line of JSON on stdout: a progress line, or (last) the result.
pub fn print<T: Serialize + ?Sized>(v: &T) -> anyhow::Result<()> {
    println!("{}", to_line(v)?);
    Ok(())
}
