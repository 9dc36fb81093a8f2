//! `Tpm::open(None)` reads the TCTI from the environment like tpm2-tools. The only test in its
//! binary, because it changes the process environment.
#![cfg(feature = "tpm")]

mod peers;
mod tpm_common;

use std::path::Path;

use tpm_common::Swtpm;
use ztmesh_core::tpm::{Tpm, TpmError, DEFAULT_TCTI};

#[test]
fn the_environment_names_the_tpm() {
    let Some(swtpm) = Swtpm::start() else { return };
    std::env::set_var("TPM2TOOLS_TCTI", swtpm.tcti());
    std::env::set_var("TCTI", "no-such-tcti");
    assert_eq!(Tpm::open(None).unwrap().info().unwrap().family, "2.0");

    // An empty TPM2TOOLS_TCTI counts as unset: TCTI is next.
    std::env::set_var("TPM2TOOLS_TCTI", "");
    assert_eq!(Tpm::open(None).unwrap_err(), TpmError::Tcti);
    std::env::set_var("TCTI", swtpm.tcti());
    assert_eq!(Tpm::open(None).unwrap().info().unwrap().family, "2.0");

    // Neither: the kernel's resource manager.
    std::env::remove_var("TPM2TOOLS_TCTI");
    std::env::remove_var("TCTI");
    assert_eq!(DEFAULT_TCTI, "device:/dev/tpmrm0");
    if !Path::new("/dev/tpmrm0").exists() {
        assert_eq!(Tpm::open(None).unwrap_err(), TpmError::Unavailable);
    }
    assert_eq!(swtpm.transient_handles(), "");
}
