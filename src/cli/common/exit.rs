//! How the process ends: a closed stdout stops a command quietly (as `ls | head` does), and an
//! error prints once with its causes, each cause once.

/// Let a write to a closed pipe end the process by `SIGPIPE`, as it does for other Unix tools:
/// `masq inspect big.onnx --json | head -c 100` then stops without a "failed printing to stdout"
/// panic. Rust ignores `SIGPIPE` at start-up; the commands that talk to peers over sockets keep it
/// ignored (a peer that hangs up is an error to report there, not a reason to die).
pub fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of a signal, before any thread is started; no
    // handler runs Rust code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// `error: ` plus the error and its causes joined by `: `, leaving out a cause whose text the
/// message so far already holds (an error that prints its source in its own message, as
/// `"{path}: {source}"` does, would otherwise show it twice: "File exists (os error 17): File
/// exists (os error 17)").
pub fn error_text(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !c.is_empty() && !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapped(std::io::Error);
    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "out/dealer.bin: {}", self.0)
        }
    }
    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn each_cause_prints_once() {
        let io = std::io::Error::from_raw_os_error(17);
        let e = anyhow::Error::new(Wrapped(io)).context("dealing");
        let text = error_text(&e);
        assert_eq!(text.matches("os error 17").count(), 1, "{text}");
        assert!(text.starts_with("dealing: out/dealer.bin: "), "{text}");
        // A cause the message does not hold is still shown.
        let e = anyhow::Error::new(std::io::Error::from_raw_os_error(2)).context("reading x");
        assert!(error_text(&e).starts_with("reading x: "), "{}", error_text(&e));
        assert!(error_text(&e).contains("os error 2"));
    }
}
