//! SigV4 verification never panics on any request line, query or headers:
//! the input is split into a method, a target and header lines.
#![no_main]

use libfuzzer_sys::fuzz_target;
use security::sigv4::{Request, Secret, SecretLookup, verify};

struct OneKey;

impl SecretLookup for OneKey {
    fn secret_for(&self, access_key_id: &str) -> Option<Secret> {
        (access_key_id == "AKIDEXAMPLE").then(|| Secret::new(&b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"[..]))
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.split('\n');
    let first = lines.next().unwrap_or("");
    let (method, target) = first.split_once(' ').unwrap_or((first, "/"));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers: Vec<(&str, &str)> = lines.filter_map(|l| l.split_once(':')).collect();
    let request = Request { method, path, query, headers: &headers };
    let _ = verify(&request, 1_369_353_600, &OneKey);
});
