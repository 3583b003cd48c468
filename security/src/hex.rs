//! Lowercase hex, as SigV4 prints hashes and signatures.

use alloc::string::String;

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Decodes exactly 64 lowercase hex digits (a SHA-256 hash or an
/// HMAC-SHA256 signature). Uppercase is refused: every signer prints
/// lowercase, and the chunk signature chain hashes the hex text itself.
pub fn decode32(text: &[u8]) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = (lower_nibble(pair[0])? << 4) | lower_nibble(pair[1])?;
    }
    Some(out)
}

fn lower_nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Value of one hex digit of either case (percent escapes, chunk sizes).
pub fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let bytes: [u8; 32] = core::array::from_fn(|i| (i * 37) as u8);
        assert_eq!(decode32(encode(&bytes).as_bytes()), Some(bytes));
    }

    #[test]
    fn refuses_bad_text() {
        assert_eq!(decode32(b"00"), None);
        assert_eq!(decode32(&[b'A'; 64]), None);
        assert_eq!(decode32(&[b'g'; 64]), None);
        assert_eq!(nibble(b'F'), Some(15));
        assert_eq!(nibble(b'x'), None);
    }
}
