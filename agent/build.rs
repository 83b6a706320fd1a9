//! Link flags for the agent binary only (not its library, tests or the other crates): its
//! resident memory on a glibc system is mostly its own code pages, so the binary is linked to
//! keep them few.
//!
//! - `-no-pie` (Linux, glibc): a position-dependent executable has no relative relocations,
//!   so the dynamic loader neither reads some 120 KiB of them at start nor writes every page
//!   of `.data.rel.ro` (about 80 KiB that would become private, anonymous memory).
//! - `link/hot-functions.txt` (x86_64 glibc, release, linked by the toolchain's own lld, the
//!   default since Rust 1.90): the functions the agent runs, placed together in a section of
//!   their own after the rest of the code. The kernel maps a binary's code in blocks of 64 KiB
//!   or more around each first touch (fault-around, large page cache folios); scattered over
//!   the whole 1.8 MiB of code, the 700 KiB that run made nearly all of it resident. The list
//!   holds the symbols of one build; the linker script made from it here matches them with
//!   their hashes as `*` (see [`linker_script`]), so it holds for a build in another directory
//!   or with other features unified (`cargo build --release` of the whole workspace, the agent
//!   with the primary for the .deb). Names that match nothing are skipped without a word: the
//!   binary is then only larger in memory, never wrong. `scripts/agent-hot-functions.sh`
//!   writes the list again.
//! - GCC's unwinder linked in statically (same targets, release), whole, when the C compiler
//!   finds `libgcc_eh.a`: the agent aborts on a panic, so it unwinds only to print a
//!   backtrace, and the shared `libgcc_s` it would otherwise load costs some 80 KiB of
//!   resident memory and the loader's work at every start.
//!
//! `PIVITALS_AGENT_LINK_MAP=FILE` also writes the linker's map, for that script.

use std::env;
use std::fs;
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
    // Only the release binary is run for long: test builds link without the script, faster.
    if var("PROFILE") == "release"
        && var("TARGET") == "x86_64-unknown-linux-gnu"
        && links_with_rust_lld(&var("RUSTC"))
    {
        let list = PathBuf::from(var("CARGO_MANIFEST_DIR")).join(HOT_FUNCTIONS);
        let script = PathBuf::from(var("OUT_DIR")).join("hot-functions.ld");
        // No list, no script: the default layout, as with any other linker.
        let Ok(names) = fs::read_to_string(&list) else {
            return;
        };
        if fs::write(&script, linker_script(&names)).is_err() {
            return;
        }
        // -Xlinker passes the path as it is (-Wl, would split it at commas).
        for arg in ["-T", &script.to_string_lossy()] {
            link_arg("-Xlinker");
            link_arg(arg);
        }
        if let Some(unwinder) = static_unwinder() {
            // Every member, so that its definitions win over libgcc_s's, which `--as-needed`
            // then leaves out.
            for arg in ["--whole-archive", &unwinder, "--no-whole-archive"] {
                link_arg("-Xlinker");
                link_arg(arg);
            }
        }
        if let Ok(map) = env::var("PIVITALS_AGENT_LINK_MAP") {
            link_arg("-Xlinker");
            link_arg(&format!("-Map={map}"));
        }
    }
}

/// The linker script that places the listed functions, in the list's order, in an output
/// section of their own just before `.text`; `INSERT` keeps the linker's default layout for
/// everything else. rustc puts each function in a section `.text.<symbol>`, so each name
/// becomes one input section pattern, with the parts that change between builds of the same
/// source as `*`: a crate's disambiguator in a v0 name (`Cs<base 62>_`, from cargo's
/// `-C metadata`, which differs with the directory and with the features unified with the
/// other packages built at once) and the hash that ends a legacy name (`17h<16 hex>E`). A
/// pattern that matches nothing is no error; one that matches several instances of a generic
/// function places them all.
fn linker_script(names: &str) -> String {
    // The C runtime's start code (in sections named plain `.text`) runs first.
    let mut script = String::from(
        "SECTIONS {\n  .text.hot : {\n    *crt1.o(.text) *crti.o(.text) *crtbegin.o(.text)\n",
    );
    for name in names.lines().map(str::trim).filter(|name| !name.is_empty()) {
        // Names are symbols: anything else (a space, a parenthesis) would end the pattern.
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.$".contains(&b))
        {
            continue;
        }
        let pattern = pattern(name);
        script.push_str(&format!(
            "    *(.text.{pattern} .text.unlikely.{pattern})\n"
        ));
    }
    // `.init` and `.fini` run too (at start and exit): beside the listed functions rather than
    // before the rest of `.text`, where they would map a block of code that never runs.
    script.push_str(concat!(
        "  }\n",
        "  .init : { KEEP(*(SORT_NONE(.init))) }\n",
        "  .fini : { KEEP(*(SORT_NONE(.fini))) }\n",
        "}\n",
        "INSERT AFTER .text;\n",
    ));
    script
}

/// `name` with its build-dependent hashes as `*` (see [`linker_script`]).
fn pattern(name: &str) -> String {
    // LTO numbers the local copies of a function it makes (`name.123`) in the order it meets
    // them, which other code before them changes.
    if let Some((name, number)) = name.rsplit_once('.')
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
    {
        return format!("{}.*", pattern(name));
    }
    if let Some(path) = name.strip_prefix("_ZN")
        && let Some(hashed) = path.strip_suffix('E')
        && let Some((path, hash)) = hashed.rsplit_once("17h")
        && hash.len() == 16
        && hash.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return format!("_ZN{path}17h*E");
    }
    if !name.starts_with("_R") {
        return name.to_owned();
    }
    // v0: "Cs", base-62 digits and "_", then the crate's name as a length and its bytes.
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find("Cs") {
        out.push_str(&rest[..at + 2]);
        rest = &rest[at + 2..];
        let digits = rest.bytes().take_while(u8::is_ascii_alphanumeric).count();
        let crate_name_follows = rest[digits..]
            .strip_prefix('_')
            .is_some_and(|after| after.starts_with(|c: char| c.is_ascii_digit()));
        if digits > 0 && crate_name_follows {
            out.push('*');
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out
}

/// The path of GCC's static unwinder, `libgcc_eh.a`, as the C compiler that links finds it;
/// `None` without one.
fn static_unwinder() -> Option<String> {
    let out = Command::new("cc")
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .filter(|out| out.status.success())?;
    let path = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    // Not found, it prints the name alone.
    Path::new(&path).is_absolute().then_some(path)
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
