//! The attestation commands, run as a user would: `arca quote …`, `arca ratls …`.
#![allow(clippy::unwrap_used)] // test helpers, outside #[test] functions

use std::process::{Command, Output};

fn arca(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arca"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn help_examples_ask_for_json_with_the_long_flag_because_o_names_an_output_file() {
    for cmd in [
        ["quote", "inspect"],
        ["quote", "verify"],
        ["ratls", "inspect"],
        ["ratls", "verify"],
    ] {
        let o = arca(&[cmd[0], cmd[1], "--help"]);
        assert!(o.status.success());
        let help = stdout(&o);
        assert!(help.contains("Examples:"), "{cmd:?}: {help}");
        assert!(!help.contains("-o json"), "{cmd:?}: {help}");
    }
    let help = stdout(&arca(&["quote", "inspect", "--help"]));
    assert!(help.contains("--output json"), "{help}");
}

#[test]
fn quote_inspect_prints_json_with_the_long_flag() {
    let quote = arca_testkit::vector("dcap-qvl/sample_sgx_quote");
    let o = arca(&["quote", "inspect", quote.to_str().unwrap(), "--output", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v["body"]["mrenclave"],
        "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
    );
}
