//! Staged interleavings of batches and a checkpoint written at the same
//! time, with power cuts between them.

mod common;

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use common::{block_on, options, pattern, read_all, sim, tag_info, write_content};
use fs::store::Store;
use storage::block::{BlockDevice, BlockError, Geometry, IoBuf, IoResult, SimDisk};

fn poll_once<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

/// A simulated disk whose superblock writes (pages 0 and 1) never complete
/// while `hold` is set: a checkpoint stops right before its superblock, as
/// a power cut there would leave it.
struct HoldSuperblock {
    disk: Arc<SimDisk>,
    hold: AtomicBool,
    held: AtomicBool,
}

impl BlockDevice for HoldSuperblock {
    fn geometry(&self) -> Geometry {
        self.disk.geometry()
    }

    fn read(&self, lba: u64, buf: IoBuf) -> impl Future<Output = IoResult> {
        self.disk.read(lba, buf)
    }

    fn write(&self, lba: u64, buf: IoBuf) -> impl Future<Output = IoResult> {
        let held = lba < 2 && self.hold.load(Ordering::Relaxed);
        if held {
            self.held.store(true, Ordering::Relaxed);
        }
        let write = (!held).then(|| self.disk.write(lba, buf));
        async move {
            match write {
                Some(write) => write.await,
                None => std::future::pending().await,
            }
        }
    }

    fn flush(&self) -> impl Future<Output = Result<(), BlockError>> {
        self.disk.flush()
    }
}

const BIG: usize = 30_000;

/// A checkpoint that absorbs its records (no journal room for them) names
/// the journal head as the place replay starts. A batch written beside it
/// goes to that very place, with the next sequence number and the chain
/// value of the batch before. If the cut comes before the checkpoint's
/// superblock, that batch is not replayed (its sequence number is past the
/// lost records) and its record never was acknowledged. But it stays on
/// the media at exactly the (place, sequence, chain value) that the next
/// session's checkpoint names if it too absorbs the same number of
/// records at the same head (a client retrying the same requests): the
/// dead session's batch then replays on top of the new checkpoint.
/// Here that batch is a PUT of `ghost`, whose extent the second session
/// handed to an acknowledged PUT of `victim`.
#[test]
fn a_batch_beside_an_absorbing_checkpoint_cut_before_its_superblock_stays_dead() {
    let disk = sim(2048, 5);
    let device =
        Arc::new(HoldSuperblock { disk: disk.clone(), hold: AtomicBool::new(false), held: AtomicBool::new(false) });

    // Session 1.
    let store = block_on(Store::format(device.clone(), options())).unwrap();
    block_on(store.create_bucket("b", "o", 1)).unwrap();
    // The ghost's bytes are written (its extent allocated) before the
    // checkpoint starts; its record comes beside it.
    let ghost = block_on(write_content(&store, 66, 0..100)).unwrap();
    for index in 0..6 {
        store.stage_system_put("s", &format!("k{index}"), vec![index as u8; BIG]).unwrap();
    }
    device.hold.store(true, Ordering::Relaxed);
    let mut sync = pin!(store.sync());
    let mut rounds = 0;
    while !device.held.load(Ordering::Relaxed) {
        assert!(poll_once(sync.as_mut()).is_pending());
        rounds += 1;
        assert!(rounds < 1_000_000, "the checkpoint never reached its superblock");
    }
    let mut put = pin!(store.put_object("b", "ghost", ghost, tag_info(66), 2_066));
    for _ in 0..1_000 {
        assert!(poll_once(put.as_mut()).is_pending(), "acknowledged before the checkpoint's superblock");
    }
    // Were the ghost's batch let beside the checkpoint, it would be on the
    // media now (written and flushed), and `batches_beside_checkpoints` 1.
    assert_eq!(store.commit_counters().batches_beside_checkpoints, 0);
    assert_eq!(disk.unflushed_writes(), 0);
    // Power cut before the superblock write.
    disk.power_cut();
    disk.restart();

    // Session 2: the absorbed records and the ghost are gone.
    let (store, _) = block_on(Store::open(disk.clone())).unwrap();
    assert!(store.head_object("b", "ghost", None).is_err());
    assert!(store.with_state(|meta| meta.system.is_empty()));
    // The same number of records again, absorbed at the same head, the
    // last an acknowledged PUT.
    block_on(async {
        let victim = write_content(&store, 77, 0..100).await.unwrap();
        for index in 0..5 {
            store.stage_system_put("s", &format!("k{index}"), vec![index as u8; BIG]).unwrap();
        }
        store.put_object("b", "victim", victim, tag_info(77), 2_077).await.unwrap();
    });
    assert_eq!(store.commit_counters().checkpoints, 1);
    assert_eq!(store.commit_counters().batches, 0, "absorbed, not logged");
    drop(store);

    // Session 3.
    let opened = block_on(Store::open(disk.clone()));
    let (store, report) = match opened {
        Ok(opened) => opened,
        Err(error) => panic!("the acknowledged victim is lost: open fails with {error:?}"),
    };
    assert_eq!(report.replayed_records, 0, "a batch of the dead session replayed: {report:?}");
    assert!(store.head_object("b", "ghost", None).is_err(), "the dead session's ghost came back");
    assert_eq!(block_on(read_all(&store, "b", "victim", None)).unwrap(), pattern(77, 0..100));
    let check = block_on(store.check());
    assert!(check.problems.is_empty(), "{:?}", check.problems);
}
