//! The widest MD5 lane code the CPU runs behind `storage::md5_lanes` (checked at run time: the
//! host build targets baseline x86-64).
use storage::md5_lanes::{self, Accelerated, LaneJob, x86};

/// Which lane code a CPU gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Md5Lanes {
    Avx512,
    Avx2,
    Sse2,
}

impl Md5Lanes {
    /// The widest this CPU supports.
    pub fn detect() -> Self {
        if std::is_x86_feature_detected!("avx512f") {
            Self::Avx512
        } else if std::is_x86_feature_detected!("avx2") {
            Self::Avx2
        } else {
            Self::Sse2
        }
    }

    /// The lane code, if this CPU runs it (checked here, so that no safe caller can get a function
    /// its CPU lacks the instructions for).
    pub fn accelerated(self) -> Option<Accelerated> {
        match self {
            Self::Avx512 if std::is_x86_feature_detected!("avx512f") => Some(Accelerated { lanes: 16, run: avx512 }),
            Self::Avx2 if std::is_x86_feature_detected!("avx2") => Some(Accelerated { lanes: 8, run: avx2 }),
            Self::Sse2 => Some(Accelerated { lanes: 4, run: sse2 }),
            Self::Avx512 | Self::Avx2 => None,
        }
    }
}

/// Installs the widest lane code this CPU runs; returns which.
pub fn install_md5_lanes() -> Md5Lanes {
    let lanes = Md5Lanes::detect();
    if let Some(accelerated) = lanes.accelerated() {
        md5_lanes::install(accelerated);
    }
    lanes
}

fn avx512(jobs: &mut [LaneJob<'_>]) {
    // SAFETY: only `Md5Lanes::accelerated` hands this out, after the CPU reported AVX-512F, all
    // the function is compiled for.
    unsafe { x86::run_avx512(jobs) }
}

fn avx2(jobs: &mut [LaneJob<'_>]) {
    // SAFETY: only `Md5Lanes::accelerated` hands this out, after the CPU reported AVX2, all the
    // function is compiled for.
    unsafe { x86::run_avx2(jobs) }
}

fn sse2(jobs: &mut [LaneJob<'_>]) {
    // SAFETY: SSE2 is part of x86-64, the only architecture this module is built for.
    unsafe { x86::run_sse2(jobs) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::md5_lanes::{digest, digest_many, digest_many_portable};

    /// Every lane code this CPU runs (this machine has all three).
    fn all() -> Vec<Accelerated> {
        let all: Vec<Accelerated> =
            [Md5Lanes::Sse2, Md5Lanes::Avx2, Md5Lanes::Avx512].into_iter().filter_map(Md5Lanes::accelerated).collect();
        assert_eq!(all.len(), 3, "the machines this runs on have AVX2 and AVX-512");
        all
    }

    #[test]
    fn lanes_continue_states_over_whole_blocks_as_one_at_a_time_does() {
        use storage::md5_lanes::run_portable;
        for accelerated in all() {
            // Each lane continues its own state (a stream's, mid-object)
            // over its own number of blocks, some over none.
            let datas: Vec<Vec<u8>> =
                (0..accelerated.lanes).map(|lane| bytes(lane as u64 + 7, lane * 64 * 3)).collect();
            let blocks: Vec<&[[u8; 64]]> = datas.iter().map(|data| data.as_chunks::<64>().0).collect();
            let states: Vec<[u32; 4]> = (0..accelerated.lanes)
                .map(|lane| [lane as u32, 1 + lane as u32 * 3, 0xdead_beef, !(lane as u32)])
                .collect();
            let jobs: Vec<LaneJob<'_>> =
                states.iter().zip(&blocks).map(|(state, blocks)| LaneJob::blocks(*state, blocks)).collect();
            let mut lanes = jobs.clone();
            let mut expected = jobs;
            (accelerated.run)(&mut lanes);
            run_portable(&mut expected);
            let lanes: Vec<[u32; 4]> = lanes.iter().map(LaneJob::state).collect();
            let expected: Vec<[u32; 4]> = expected.iter().map(LaneJob::state).collect();
            assert_eq!(lanes, expected, "{} lanes", accelerated.lanes);
        }
    }

    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn hex(digest: &[u8; 16]) -> String {
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn rfc_1321_test_suite_in_every_lane() {
        let suite: [(&[u8], &str); 7] = [
            (b"", "d41d8cd98f00b204e9800998ecf8427e"),
            (b"a", "0cc175b9c0f1b6a831c399e269772661"),
            (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
            (b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (b"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
            (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"),
            (
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for accelerated in all() {
            // Each vector in each lane position, beside the others.
            for shift in 0..accelerated.lanes {
                let messages: Vec<&[u8]> =
                    (0..accelerated.lanes).map(|lane| suite[(lane + shift) % suite.len()].0).collect();
                let mut out = vec![[0u8; 16]; messages.len()];
                accelerated.digest_many(&messages, &mut out);
                for (lane, digest) in out.iter().enumerate() {
                    assert_eq!(hex(digest), suite[(lane + shift) % suite.len()].1, "{} lanes", accelerated.lanes);
                }
            }
        }
    }

    #[test]
    fn agrees_with_md5_for_every_length_and_mix() {
        for accelerated in all() {
            // Every length 0..=300 (padding into one or two blocks, every
            // boundary), lanes of different lengths together.
            for len in 0..=300usize {
                let messages: Vec<Vec<u8>> = (0..accelerated.lanes)
                    .map(|lane| bytes((len * 31 + lane) as u64, (len + lane * 37) % 301))
                    .collect();
                let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
                for count in [accelerated.lanes, 2, accelerated.lanes - 1] {
                    let mut out = vec![[0u8; 16]; count];
                    accelerated.digest_many(&refs[..count], &mut out);
                    for (message, got) in refs.iter().zip(&out) {
                        assert_eq!(*got, digest(message), "{} lanes, length {}", accelerated.lanes, len);
                    }
                }
            }
            // Long ones, one lane much longer than the others.
            let messages: Vec<Vec<u8>> =
                (0..accelerated.lanes).map(|lane| bytes(lane as u64, 4096 + lane * 1000)).collect();
            let mut refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
            let long = bytes(99, 200_000);
            refs[accelerated.lanes / 2] = &long;
            let mut out = vec![[0u8; 16]; refs.len()];
            accelerated.digest_many(&refs, &mut out);
            for (message, got) in refs.iter().zip(&out) {
                assert_eq!(*got, digest(message));
            }
        }
    }

    #[test]
    fn digest_many_groups_any_count_in_order() {
        install_md5_lanes();
        for count in [0, 1, 2, 3, 15, 16, 17, 40, 100] {
            let messages: Vec<Vec<u8>> = (0..count).map(|i| bytes(i as u64, (i * 977) % 9000)).collect();
            let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
            let mut out = vec![[0u8; 16]; count];
            let mut expected = vec![[0u8; 16]; count];
            digest_many(&refs, &mut out);
            digest_many_portable(&refs, &mut expected);
            assert_eq!(out, expected, "{count} messages");
        }
        assert_eq!(digest(b"abc"), digest_many_one(b"abc"));
    }

    fn digest_many_one(message: &[u8]) -> [u8; 16] {
        let mut out = [[0u8; 16]];
        digest_many(&[message], &mut out);
        out[0]
    }
}
