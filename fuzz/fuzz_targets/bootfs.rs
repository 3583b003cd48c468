//! The boot-archive reader never panics, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use services::bootfs::Archive;

fuzz_target!(|data: &[u8]| {
    let archive = Archive::new(data);
    let _ = archive.validate();
    for entry in archive.entries().flatten() {
        let _ = archive.get(entry.path);
    }
});
