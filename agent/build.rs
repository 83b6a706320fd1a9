//! Link flags for the agent binary only (not its library, tests or the other crates): its
//! resident memory on a glibc system is mostly its own code pages, so the binary is linked to
//! keep them few.
//!
//! - `-no-pie` (Linux, glibc): a position-dependent executable has no relative relocations,
//!   so the dynamic loader neither reads some 120 KiB of them at start nor writes every page
//!   of `.data.rel.ro` (about 80 KiB that would become private, anonymous memory).
//! - `link/hot-functions.txt` (x86_64 glibc, linked by the toolchain's own lld, the default
//!   since Rust 1.90): the functions the agent runs, placed first and together. The kernel maps
//!   a binary's code in blocks of 64 KiB around each first touch (fault-around, large page
//!   cache folios); scattered over the whole 1.8 MiB of code, the 650 KiB that run made all of
//!   it resident. Names that no longer match (another toolchain, new dependencies) are skipped
//!   without a word: the binary is then only larger in memory, never wrong.
//!   `scripts/agent-hot-functions.sh` writes the list again.
//!
//! `PIVITALS_AGENT_LINK_MAP=FILE` also writes the linker's map, for that script.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const HOT_FUNCTIONS: &str = "link/hot-functions.txt";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={HOT_FUNCTIONS}");
    println!("cargo:rerun-if-env-changed=PIVITALS_AGENT_LINK_MAP");
    let var = |name: &str| env::var(name).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" {
        return;
    }
    link_arg("-no-pie");
    if var("TARGET") == "x86_64-unknown-linux-gnu" && links_with_rust_lld(&var("RUSTC")) {
        let list = PathBuf::from(var("CARGO_MANIFEST_DIR")).join(HOT_FUNCTIONS);
        // -Xlinker passes the path as it is (-Wl, would split it at commas).
        for arg in [
            "--symbol-ordering-file",
            &list.to_string_lossy(),
            "--no-warn-symbol-ordering",
        ] {
            link_arg("-Xlinker");
            link_arg(arg);
        }
        if let Ok(map) = env::var("PIVITALS_AGENT_LINK_MAP") {
            link_arg("-Xlinker");
            link_arg(&format!("-Map={map}"));
        }
    }
}

fn link_arg(arg: &str) {
    println!("cargo:rustc-link-arg-bins={arg}");
}

/// Whether rustc links with its own lld (which reads a symbol ordering file; GNU ld refuses
/// the option): Rust 1.90 or later with `rust-lld` in its sysroot, and no flag that chooses
/// another linker.
fn links_with_rust_lld(rustc: &str) -> bool {
    let output = |args: &[&str]| {
        Command::new(rustc)
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let Some(version) = output(&["-vV"]) else {
        return false;
    };
    let minor = version
        .lines()
        .find_map(|line| line.strip_prefix("release: 1."))
        .and_then(|rest| rest.split('.').next())
        .and_then(|minor| minor.parse::<u32>().ok());
    if minor.is_none_or(|minor| minor < 90) {
        return false;
    }
    let Some(sysroot) = output(&["--print", "sysroot"]) else {
        return false;
    };
    let lld =
        Path::new(sysroot.trim()).join("lib/rustlib/x86_64-unknown-linux-gnu/bin/gcc-ld/ld.lld");
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let other_linker = [
        "link-self-contained",
        "linker-flavor",
        "linker-features",
        "fuse-ld",
    ]
    .iter()
    .any(|flag| flags.contains(flag));
    lld.exists() && !other_linker
}
