//! The one rule for tests that need a program from outside the project (a peer: Go, swtpm,
//! openssl, tpm2-tools): under CI (`CI` set, and not `0` or `false`) a missing peer fails the
//! test; elsewhere the test prints why it did not run and passes. Never a quiet skip.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

/// Whether this is a CI run, where every peer must be installed.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !matches!(value.trim(), "" | "0" | "false"))
}

/// Whether `program` runs and exits successfully with `args` (such as `--version`).
pub fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Reports that the current test cannot run because `why` (for instance "`go` is not
/// installed"): panics under CI; elsewhere prints a `SKIPPED` line naming the test, straight to
/// stderr (the harness does not capture it, so the skip always shows), and the caller returns.
pub fn missing(why: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("this test");
    assert!(!in_ci(), "{test}: {why}, and CI=true requires every interoperability peer to be installed");
    let _ =
        std::io::stderr().write_all(format!("SKIPPED {test}: {why}; set CI=true to make this a failure\n").as_bytes());
}
