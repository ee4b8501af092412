//! Compiles the XDP filter program (`src/datapath/bpf/filter.bpf.c`) with clang into OUT_DIR; the
//! loader embeds the object with `include_bytes!`. Nothing prebuilt is committed.

// A build script reports failure by panicking: cargo shows the message and stops the build.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::env;
use std::path::PathBuf;
use std::process::Command;

const FILTER_SRC: &str = "src/datapath/bpf/filter.bpf.c";

fn main() {
    println!("cargo:rerun-if-changed={FILTER_SRC}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CLANG");

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let object = out_dir.join("filter.bpf.o");
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());

    // The asm/ headers the UAPI headers include live under the multiarch directory on Debian.
    let mut include_args = Vec::new();
    if let Ok(out) = Command::new("gcc").arg("-print-multiarch").output() {
        let triple = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !triple.is_empty() {
            include_args.push(format!("-I/usr/include/{triple}"));
        }
    }

    let output = Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror=shadow"])
        .args(&include_args)
        .args(["-c", FILTER_SRC, "-o"])
        .arg(&object)
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) => panic!(
            "xvs needs clang to compile its XDP filter program ({FILTER_SRC}), but `{clang}` could \
             not be run: {e}. Install clang and llvm (e.g. `apt-get install clang llvm`) or set \
             CLANG=/path/to/clang."
        ),
    };
    if !output.status.success() {
        panic!(
            "clang failed to compile the XDP filter program {FILTER_SRC} (are the kernel UAPI \
             headers installed? `apt-get install linux-libc-dev`):\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
