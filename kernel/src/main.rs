//! The Rustcore appliance image. The PVH trampoline (`arch::boot`) calls
//! `kmain` with the start-info pointer.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
#[unsafe(no_mangle)]
pub extern "C" fn kmain(start_info: u64) -> ! {
    kernel::start(start_info)
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("rustcore is a bare-metal image; boot it with `cargo xtask run`.");
    std::process::exit(2);
}
