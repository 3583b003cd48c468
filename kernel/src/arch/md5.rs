//! SSE2 lanes behind `storage::md5_lanes`: the ETags of small PUTs that finish together, four at
//! a time.
use storage::md5_lanes::{self, Accelerated, LaneJob, LanesComparison, x86};

const SSE2: Accelerated = Accelerated { lanes: 4, run };

/// Installs the SSE2 lanes where they beat one message at a time (measured now: QEMU's TCG
/// emulates every instruction); returns the measurement for the boot log.
pub fn install() -> LanesComparison {
    let comparison = md5_lanes::compare(&SSE2, &crate::time::now_ns);
    if comparison.lanes_win() {
        md5_lanes::install(SSE2);
    }
    comparison
}

fn run(jobs: &mut [LaneJob<'_>]) {
    // SAFETY: SSE2 is part of x86-64 and enabled in the image's target, all the function is
    // compiled for.
    unsafe { x86::run_sse2(jobs) }
}
