// Links the bare-metal image with our own layout; the host build of this crate
// (a stub plus host-testable modules) links normally.
fn main() {
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed=x86_64-rustcore.json");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
        // The 32-bit PVH trampoline uses absolute relocations, which a PIE rejects.
        println!("cargo:rustc-link-arg-bins=--no-pie");
    }
}
