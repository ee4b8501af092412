//! Fuzz target: the wire views' checked constructors and every accessor and setter, on the input
//! and on its suffixes at the usual header offsets, compared with the rules they document
//! (`tests/fixtures/oracle.rs`, shared with `tests/random_frames.rs`); and xvs's checksum sum
//! against the reference one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xvs::datapath::wire::checksum;

#[path = "../../tests/fixtures/nat_lab.rs"]
mod nat_lab;
#[path = "../../tests/fixtures/oracle.rs"]
mod oracle;

fuzz_target!(|data: &[u8]| {
    let values = data
        .iter()
        .take(8)
        .fold(0u64, |v, &b| v << 8 | u64::from(b));
    let mut work = Vec::with_capacity(data.len());
    for start in [0, 14, 18, 34, 38] {
        if let Some(bytes) = data.get(start..) {
            oracle::exercise_views(bytes, &mut work, values);
        }
    }
    assert_eq!(
        checksum::fold(checksum::sum(data, 0)),
        oracle::fold(oracle::sum(data, 0))
    );
    assert_eq!(
        checksum::verifies(data),
        oracle::fold(oracle::sum(data, 0)) == 0xffff
    );
});
