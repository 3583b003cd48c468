//! Randomness from the host OS.

/// Fills `buf` with cryptographically secure random bytes (`getrandom(2)`).
pub fn fill(buf: &mut [u8]) -> Result<(), getrandom::Error> {
    getrandom::fill(buf)
}

#[cfg(test)]
mod tests {
    #[test]
    fn fills_with_distinct_bytes() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        super::fill(&mut a).unwrap();
        super::fill(&mut b).unwrap();
        assert_ne!(a, b);
    }
}
