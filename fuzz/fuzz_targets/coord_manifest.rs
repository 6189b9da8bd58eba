//! MarbleRun manifests (arca-protocol) from arbitrary bytes: decoding, validation and the template dry run
//! never panic; a manifest that is accepted has templates that all pass the dry run again, and a fingerprint;
//! package updates and single templates parse or fail cleanly; every error message can be formatted.
#![no_main]

use arca_protocol::manifest::template::{Target, Template};
use arca_protocol::{fingerprint, Manifest, PackageUpdate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Manifest::parse(data) {
        Ok(m) => {
            assert_eq!(fingerprint(data).len(), 64);
            for marble in m.marbles.values() {
                assert!(m.packages.contains_key(&marble.package), "accepted marble with unknown package");
                let p = &marble.parameters;
                for (target, entries) in [(Target::File, &p.files), (Target::Env, &p.env)] {
                    for e in entries.values() {
                        if let Some(t) = &e.template {
                            t.check(target, |r| m.kind_of(r)).expect("accepted manifest fails its dry run");
                        }
                    }
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if let Err(e) = PackageUpdate::parse(data) {
        let _ = e.to_string();
    }
    if let Ok(t) = Template::parse(data) {
        let _ = t.has_actions();
        let _ = t.actions().count();
    }
});
