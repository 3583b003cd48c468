//! NVMe over PCIe (NVMe base specification 1.4): one I/O queue pair on one
//! MSI-X vector, many commands in flight, and a polled admin queue used only
//! while the controller is brought up.
//!
//! Interrupt routing: the admin completion queue is tied to interrupt vector
//! 0 by the specification and cannot have interrupts disabled, so MSI-X table
//! entry 0 stays masked (the admin queue is polled at boot) and the I/O
//! completion queue uses table entry 1. Admin completions therefore never
//! wake the I/O completion task.
//!
//! Requests own their buffer until the controller completes them, as in
//! virtio-blk: dropping a request's future leaves the buffer with its slot
//! until the completion arrives. The command id is the slot index. A
//! transfer larger than the controller's limit (MDTS, at most one PRP list
//! page) is split into consecutive commands of that size.

use alloc::rc::Rc;
use alloc::string::String;
use core::cell::RefCell;
use core::future::{Future, poll_fn};
use core::sync::atomic::{Ordering, fence};

use storage::block::{BlockDevice, BlockError, Geometry, IoBuf, IoResult, PAGE_BYTES};

use crate::drivers::dma::DmaBuffer;
use crate::drivers::mmio::Mmio;
use crate::drivers::requests::{AbandonOnDrop, Outcome, RequestSlots};
use crate::pci::{self, ConfigAccess, Function};
use crate::time;

// Controller registers (section 3.1).
const REG_CAP: u64 = 0x00;
const REG_CC: u64 = 0x14;
const REG_CSTS: u64 = 0x1C;
const REG_AQA: u64 = 0x24;
const REG_ASQ: u64 = 0x28;
const REG_ACQ: u64 = 0x30;
const DOORBELLS: u64 = 0x1000;

const CC_ENABLE: u32 = 1;
/// I/O submission queue entry size 2^6 = 64 bytes, completion 2^4 = 16.
const CC_IOSQES_64: u32 = 6 << 16;
const CC_IOCQES_16: u32 = 4 << 20;
const CSTS_READY: u32 = 1;
const CSTS_FATAL: u32 = 1 << 1;
/// CAP.CSS bit 0: the NVM command set.
const CAP_CSS_NVM: u64 = 1 << 37;

const ADMIN_CREATE_SQ: u8 = 0x01;
const ADMIN_CREATE_CQ: u8 = 0x05;
const ADMIN_IDENTIFY: u8 = 0x06;
const ADMIN_SET_FEATURES: u8 = 0x09;
const FEATURE_NUMBER_OF_QUEUES: u32 = 0x07;
const CNS_NAMESPACE: u32 = 0;
const CNS_CONTROLLER: u32 = 1;

const IO_FLUSH: u8 = 0x00;
const IO_WRITE: u8 = 0x01;
const IO_READ: u8 = 0x02;

const SQ_ENTRY_BYTES: usize = 64;
const CQ_ENTRY_BYTES: usize = 16;
const ADMIN_ENTRIES: u16 = 32;
const IO_QUEUE_ID: u16 = 1;
/// MSI-X table entry of the I/O completion queue (entry 0 is the admin
/// queue's and stays masked).
const IO_MSIX_ENTRY: u16 = 1;
const MAX_IO_ENTRIES: u16 = 256;
const NAMESPACE_ID: u32 = 1;
/// One PRP list page per command: the first page goes in PRP1, the rest
/// (up to 512 entries) in the list, so a command moves at most 2 MiB; we
/// stay at 512 pages to keep the arithmetic obvious.
const MAX_TRANSFER_PAGES: usize = 512;
const ADMIN_TIMEOUT_NS: u64 = 5_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NvmeError {
    BarNotMapped(u8),
    /// BAR0 is too small for the registers and the I/O doorbells.
    RegistersTooSmall {
        bar_bytes: u64,
    },
    /// MSI-X missing or with too few table entries.
    NoMsix,
    /// The controller cannot use 4 KiB memory pages.
    UnsupportedPageSize {
        min_page_bytes: u64,
    },
    NoNvmCommandSet,
    /// CSTS.RDY did not reach `ready` within CAP.TO.
    ReadyTimeout {
        ready: bool,
    },
    /// CSTS.CFS: the controller reported a fatal error.
    ControllerFatal,
    AdminTimeout {
        opcode: u8,
    },
    AdminFailed {
        opcode: u8,
        status: u16,
    },
    /// Namespace 1 is absent or uses a format we do not drive.
    UnsupportedNamespace {
        block_bytes: u64,
        metadata_bytes: u16,
    },
}

/// A submission/completion queue pair in DMA memory with its doorbells.
struct QueuePair {
    entries: u16,
    submissions: DmaBuffer,
    completions: DmaBuffer,
    sq_tail: u16,
    cq_head: u16,
    /// The phase tag a new completion carries; flips each time `cq_head` wraps.
    cq_phase: u16,
    sq_doorbell: Mmio,
    cq_doorbell: Mmio,
}

/// A submission queue entry's fields (section 4.2), zero where unused.
#[derive(Clone, Copy, Default)]
struct Command {
    opcode: u8,
    namespace: u32,
    prp1: u64,
    prp2: u64,
    dwords_10_to_15: [u32; 6],
}

/// What a completion queue entry says about one command.
struct Completion {
    command_id: u16,
    /// Status field without the phase tag; 0 is success.
    status: u16,
}

impl QueuePair {
    fn new(entries: u16, registers: &Mmio, queue_id: u16, stride_bytes: u64) -> Self {
        let sq_doorbell = DOORBELLS + 2 * u64::from(queue_id) * stride_bytes;
        Self {
            entries,
            submissions: DmaBuffer::new(usize::from(entries) * SQ_ENTRY_BYTES),
            completions: DmaBuffer::new(usize::from(entries) * CQ_ENTRY_BYTES),
            sq_tail: 0,
            cq_head: 0,
            cq_phase: 1,
            sq_doorbell: registers.window(sq_doorbell, 4),
            cq_doorbell: registers.window(sq_doorbell + stride_bytes, 4),
        }
    }

    /// Writes `command` with id `command_id` at the tail and rings the
    /// doorbell. The caller keeps at most `entries - 1` commands outstanding,
    /// so the tail never overtakes entries the controller has not fetched.
    fn submit(&mut self, command_id: u16, command: &Command) {
        let base = usize::from(self.sq_tail) * SQ_ENTRY_BYTES;
        let queue = &mut self.submissions;
        queue.write::<u32>(base, u32::from(command.opcode) | (u32::from(command_id) << 16));
        queue.write::<u32>(base + 4, command.namespace);
        queue.write::<u64>(base + 8, 0);
        queue.write::<u64>(base + 16, 0);
        queue.write::<u64>(base + 24, command.prp1);
        queue.write::<u64>(base + 32, command.prp2);
        for (index, dword) in command.dwords_10_to_15.iter().enumerate() {
            queue.write::<u32>(base + 40 + 4 * index, *dword);
        }
        self.sq_tail = (self.sq_tail + 1) % self.entries;
        // The entry must be in memory before the doorbell tells the
        // controller to fetch it.
        fence(Ordering::SeqCst);
        self.sq_doorbell.write32(0, u32::from(self.sq_tail));
    }

    /// The next completion, if the controller posted one (phase tag matches).
    /// Call `release_completions` after a batch.
    fn pop(&mut self) -> Option<Completion> {
        let base = usize::from(self.cq_head) * CQ_ENTRY_BYTES;
        let status_and_phase: u16 = self.completions.read(base + 14);
        if status_and_phase & 1 != self.cq_phase {
            return None;
        }
        // Read the rest of the entry only after seeing its phase tag.
        fence(Ordering::Acquire);
        let command_id: u16 = self.completions.read(base + 12);
        self.cq_head += 1;
        if self.cq_head == self.entries {
            self.cq_head = 0;
            self.cq_phase ^= 1;
        }
        Some(Completion { command_id, status: status_and_phase >> 1 })
    }

    /// Tells the controller the popped entries may be reused.
    fn release_completions(&self) {
        fence(Ordering::SeqCst);
        self.cq_doorbell.write32(0, u32::from(self.cq_head));
    }
}

/// Spins until `done()` or `timeout_ns` elapse; returns whether it got done.
fn wait_until(timeout_ns: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = time::now_ns() + timeout_ns;
    loop {
        if done() {
            return true;
        }
        if time::now_ns() > deadline {
            return done();
        }
        core::hint::spin_loop();
    }
}

/// Success (SCT and SC zero) ignoring the More/DNR/CRD hint bits.
fn status_ok(status: u16) -> bool {
    status & 0x7FF == 0
}

struct Inner {
    registers: Mmio,
    io: QueuePair,
    /// One 4 KiB PRP list page per slot.
    prp_lists: DmaBuffer,
    /// Idle after `init`, but the controller owns it until disabled.
    _admin: QueuePair,
    requests: RequestSlots<u16>,
    ready_timeout_ns: u64,
}

impl Drop for Inner {
    /// The queues and any abandoned buffers are freed right after this:
    /// disable the controller first so it stops using them.
    fn drop(&mut self) {
        let config = self.registers.read32(REG_CC);
        self.registers.write32(REG_CC, config & !CC_ENABLE);
        wait_until(self.ready_timeout_ns, || self.registers.read32(REG_CSTS) & CSTS_READY == 0);
    }
}

pub struct Nvme {
    inner: Rc<RefCell<Inner>>,
    geometry: Geometry,
    volatile_write_cache: bool,
    max_transfer_bytes: usize,
    pub model: String,
    pub serial: String,
    pub vector: u8,
}

/// The polled admin queue, used during `Nvme::init` only.
struct Admin {
    queue: QueuePair,
    registers: Mmio,
    next_id: u16,
}

impl Admin {
    fn run(&mut self, command: Command) -> Result<u32, NvmeError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.queue.submit(id, &command);
        let mut completion = None;
        let registers = self.registers;
        let queue = &mut self.queue;
        let done = wait_until(ADMIN_TIMEOUT_NS, || {
            completion = queue.pop();
            completion.is_some() || registers.read32(REG_CSTS) & CSTS_FATAL != 0
        });
        let Some(completion) = completion.filter(|_| done) else {
            return Err(if registers.read32(REG_CSTS) & CSTS_FATAL != 0 {
                NvmeError::ControllerFatal
            } else {
                NvmeError::AdminTimeout { opcode: command.opcode }
            });
        };
        queue.release_completions();
        if completion.command_id != id {
            crate::fatal(format_args!(
                "nvme admin queue: completion for id {} while {id} is outstanding",
                completion.command_id
            ));
        }
        if !status_ok(completion.status) {
            return Err(NvmeError::AdminFailed { opcode: command.opcode, status: completion.status });
        }
        // Dword 0 of the completion entry just popped.
        let previous = (usize::from(queue.cq_head) + usize::from(queue.entries) - 1) % usize::from(queue.entries);
        Ok(queue.completions.read::<u32>(previous * CQ_ENTRY_BYTES))
    }

    fn identify(&mut self, cns: u32, namespace: u32) -> Result<DmaBuffer, NvmeError> {
        let data = DmaBuffer::new(PAGE_BYTES);
        let mut dwords = [0; 6];
        dwords[0] = cns;
        self.run(Command {
            opcode: ADMIN_IDENTIFY,
            namespace,
            prp1: data.bus_address(),
            dwords_10_to_15: dwords,
            ..Command::default()
        })?;
        Ok(data)
    }
}

/// ASCII field of an identify structure, trailing spaces removed.
fn identify_string(data: &DmaBuffer, range: core::ops::Range<usize>) -> String {
    data.as_slice()[range]
        .iter()
        .map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '?' })
        .collect::<String>()
        .trim_end()
        .into()
}

impl Nvme {
    /// Resets and configures the controller, identifies namespace 1 and
    /// creates one I/O queue pair whose completions raise `vector` on
    /// `apic_id`.
    pub fn init(access: &impl ConfigAccess, function: &Function, apic_id: u32, vector: u8) -> Result<Self, NvmeError> {
        let (bar_address, bar_bytes) = pci::memory_bar(function, 0).ok_or(NvmeError::BarNotMapped(0))?;
        let registers = Mmio::map(bar_address, bar_bytes);
        let capabilities = u64::from(registers.read32(REG_CAP)) | (u64::from(registers.read32(REG_CAP + 4)) << 32);
        let max_entries = (capabilities & 0xFFFF) as u32 + 1;
        let ready_timeout_ns = ((capabilities >> 24) & 0xFF).max(1) * 500_000_000;
        let stride_bytes = 4u64 << ((capabilities >> 32) & 0xF);
        let min_page_bytes = 4096u64 << ((capabilities >> 48) & 0xF);
        if min_page_bytes != 4096 {
            return Err(NvmeError::UnsupportedPageSize { min_page_bytes });
        }
        if capabilities & CAP_CSS_NVM == 0 {
            return Err(NvmeError::NoNvmCommandSet);
        }
        if DOORBELLS + 4 * stride_bytes > bar_bytes {
            return Err(NvmeError::RegistersTooSmall { bar_bytes });
        }

        // MSI-X: every entry masked, then entry 1 routed to our vector.
        let msix = function.msix().filter(|m| m.table_size > IO_MSIX_ENTRY).ok_or(NvmeError::NoMsix)?;
        let msix_table = if msix.table_bar == 0 {
            registers
        } else {
            let (address, bytes) =
                pci::memory_bar(function, msix.table_bar).ok_or(NvmeError::BarNotMapped(msix.table_bar))?;
            Mmio::map(address, bytes)
        }
        .window(u64::from(msix.table_offset), 16 * u64::from(msix.table_size));
        for entry in 0..msix.table_size {
            msix_table.write32(16 * u64::from(entry) + 12, 1);
        }
        let (address, data) = pci::msix_message(apic_id, vector);
        let entry = 16 * u64::from(IO_MSIX_ENTRY);
        msix_table.write32(entry, address as u32);
        msix_table.write32(entry + 4, (address >> 32) as u32);
        msix_table.write32(entry + 8, data);
        msix_table.write32(entry + 12, 0);
        pci::enable_msix(access, function.bdf, &msix);

        // Disable, then describe the admin queue and enable (section 7.6.1).
        registers.write32(REG_CC, registers.read32(REG_CC) & !CC_ENABLE);
        if !wait_until(ready_timeout_ns, || registers.read32(REG_CSTS) & CSTS_READY == 0) {
            return Err(NvmeError::ReadyTimeout { ready: false });
        }
        let admin_queue = QueuePair::new(ADMIN_ENTRIES, &registers, 0, stride_bytes);
        let admin_size = u32::from(ADMIN_ENTRIES - 1);
        registers.write32(REG_AQA, (admin_size << 16) | admin_size);
        registers.write64_split(REG_ASQ, admin_queue.submissions.bus_address());
        registers.write64_split(REG_ACQ, admin_queue.completions.bus_address());
        registers.write32(REG_CC, CC_IOSQES_64 | CC_IOCQES_16 | CC_ENABLE);
        let became_ready = wait_until(ready_timeout_ns, || registers.read32(REG_CSTS) & (CSTS_READY | CSTS_FATAL) != 0);
        if registers.read32(REG_CSTS) & CSTS_FATAL != 0 {
            return Err(NvmeError::ControllerFatal);
        }
        if !became_ready {
            return Err(NvmeError::ReadyTimeout { ready: true });
        }
        let mut admin = Admin { queue: admin_queue, registers, next_id: 0 };
        let configured = match configure(&mut admin, registers, max_entries, stride_bytes) {
            Ok(configured) => configured,
            Err(error) => {
                // Stop the controller before the admin queue's memory is freed.
                registers.write32(REG_CC, 0);
                wait_until(ready_timeout_ns, || registers.read32(REG_CSTS) & CSTS_READY == 0);
                return Err(error);
            }
        };
        let geometry = configured.geometry;
        let inner = Inner {
            registers,
            prp_lists: DmaBuffer::new(usize::from(geometry.queue_depth) * PAGE_BYTES),
            requests: RequestSlots::new(usize::from(geometry.queue_depth)),
            io: configured.io,
            _admin: admin.queue,
            ready_timeout_ns,
        };
        Ok(Self {
            inner: Rc::new(RefCell::new(inner)),
            geometry,
            volatile_write_cache: configured.volatile_write_cache,
            max_transfer_bytes: configured.max_transfer_bytes,
            model: configured.model,
            serial: configured.serial,
            vector,
        })
    }
}

/// What `configure` learnt and built.
struct Configured {
    geometry: Geometry,
    volatile_write_cache: bool,
    max_transfer_bytes: usize,
    model: String,
    serial: String,
    io: QueuePair,
}

/// Identify, queue count and I/O queue creation over the admin queue.
fn configure(admin: &mut Admin, registers: Mmio, max_entries: u32, stride_bytes: u64) -> Result<Configured, NvmeError> {
    let controller = admin.identify(CNS_CONTROLLER, 0)?;
    let serial = identify_string(&controller, 4..24);
    let model = identify_string(&controller, 24..64);
    let mdts = controller.read::<u8>(77);
    let volatile_write_cache = controller.read::<u8>(525) & 1 != 0;
    // MDTS is a power of two in units of the minimum page size (4 KiB,
    // checked by the caller); 0 means no limit.
    let mdts_pages = if mdts == 0 || mdts >= 20 { usize::MAX } else { 1usize << mdts };
    let max_transfer_bytes = mdts_pages.min(MAX_TRANSFER_PAGES) * PAGE_BYTES;

    let namespace = admin.identify(CNS_NAMESPACE, NAMESPACE_ID)?;
    let capacity_blocks = namespace.read::<u64>(0);
    let format_index = usize::from(namespace.read::<u8>(26) & 0xF);
    let format = namespace.read::<u32>(128 + 4 * format_index);
    let metadata_bytes = format as u16;
    let block_shift = (format >> 16) & 0xFF;
    let block_bytes = if block_shift < 32 { 1u64 << block_shift } else { 0 };
    if capacity_blocks == 0 || metadata_bytes != 0 || !(block_bytes == 512 || block_bytes == 4096) {
        return Err(NvmeError::UnsupportedNamespace { block_bytes, metadata_bytes });
    }

    // One submission and one completion queue (0-based counts).
    admin.run(Command {
        opcode: ADMIN_SET_FEATURES,
        dwords_10_to_15: [FEATURE_NUMBER_OF_QUEUES, 0, 0, 0, 0, 0],
        ..Command::default()
    })?;
    let entries = max_entries.min(u32::from(MAX_IO_ENTRIES)) as u16;
    let io = QueuePair::new(entries, &registers, IO_QUEUE_ID, stride_bytes);
    let size_and_id = (u32::from(entries - 1) << 16) | u32::from(IO_QUEUE_ID);
    // Interrupts enabled (bit 1) on our MSI-X entry, physically contiguous (bit 0).
    admin.run(Command {
        opcode: ADMIN_CREATE_CQ,
        prp1: io.completions.bus_address(),
        dwords_10_to_15: [size_and_id, (u32::from(IO_MSIX_ENTRY) << 16) | 0b11, 0, 0, 0, 0],
        ..Command::default()
    })?;
    // Linked to completion queue 1, physically contiguous.
    admin.run(Command {
        opcode: ADMIN_CREATE_SQ,
        prp1: io.submissions.bus_address(),
        dwords_10_to_15: [size_and_id, (u32::from(IO_QUEUE_ID) << 16) | 1, 0, 0, 0, 0],
        ..Command::default()
    })?;
    let geometry = Geometry {
        block_bytes: block_bytes as u32,
        capacity_blocks,
        // A queue of n entries holds n - 1 commands.
        queue_depth: entries - 1,
        supports_discard: false,
    };
    Ok(Configured { geometry, volatile_write_cache, max_transfer_bytes, model, serial, io })
}

impl Nvme {
    /// Reaps completions whenever the I/O queue's interrupt fires. Spawn it once.
    pub fn completions(&self, event: &'static runtime::event::Event) -> impl Future<Output = ()> + 'static {
        let inner = self.inner.clone();
        async move {
            loop {
                event.wait().await;
                reap(&mut inner.borrow_mut());
            }
        }
    }

    pub fn completed_requests(&self) -> u64 {
        self.inner.borrow().requests.completed()
    }

    /// Largest transfer one command carries; longer requests are split.
    pub fn max_transfer_bytes(&self) -> usize {
        self.max_transfer_bytes
    }

    /// Reads or writes `buffer` at `lba` in commands of at most
    /// `max_transfer_bytes`, one after the other.
    async fn transfer(&self, opcode: u8, lba: u64, buffer: IoBuf) -> IoResult {
        if let Err(error) = self.geometry.check(lba, buffer.len()) {
            return (Err(error), buffer);
        }
        let block_bytes = self.geometry.block_bytes as usize;
        let mut buffer = Some(buffer);
        let total_bytes = buffer.as_ref().map_or(0, IoBuf::len);
        let mut offset_bytes = 0;
        while offset_bytes < total_bytes {
            let len_bytes = (total_bytes - offset_bytes).min(self.max_transfer_bytes);
            let chunk_lba = lba + (offset_bytes / block_bytes) as u64;
            let (result, returned) = self.submit(opcode, chunk_lba, buffer.take(), offset_bytes, len_bytes).await;
            buffer = returned;
            if result.is_err() {
                return (result, buffer.unwrap_or_else(|| IoBuf::zeroed(0)));
            }
            offset_bytes += len_bytes;
        }
        (Ok(()), buffer.unwrap_or_else(|| IoBuf::zeroed(0)))
    }

    /// One command: `len_bytes` of `buffer` from byte `offset_bytes` (a page
    /// boundary) at `lba`, or a flush when `buffer` is `None`.
    async fn submit(
        &self,
        opcode: u8,
        lba: u64,
        buffer: Option<IoBuf>,
        offset_bytes: usize,
        len_bytes: usize,
    ) -> (Result<(), BlockError>, Option<IoBuf>) {
        let mut buffer = buffer;
        let slot = poll_fn(|cx| self.inner.borrow_mut().requests.poll_free(cx, true)).await;
        {
            let mut inner = self.inner.borrow_mut();
            let mut command = Command { opcode, namespace: NAMESPACE_ID, ..Command::default() };
            if let Some(data) = buffer.as_mut() {
                debug_assert!(offset_bytes.is_multiple_of(PAGE_BYTES) && offset_bytes + len_bytes <= data.len());
                let first_page = data.as_mut_slice().as_mut_ptr() as u64 + offset_bytes as u64;
                let pages = len_bytes.div_ceil(PAGE_BYTES);
                command.prp1 = first_page;
                command.prp2 = match pages {
                    0 | 1 => 0,
                    2 => first_page + PAGE_BYTES as u64,
                    _ => {
                        // PRP list: the pages after the first, in order.
                        let list = slot * PAGE_BYTES;
                        for page in 1..pages {
                            inner
                                .prp_lists
                                .write::<u64>(list + 8 * (page - 1), first_page + (page * PAGE_BYTES) as u64);
                        }
                        inner.prp_lists.bus_address() + list as u64
                    }
                };
                let blocks = (len_bytes / self.geometry.block_bytes as usize) as u32;
                command.dwords_10_to_15[0] = lba as u32;
                command.dwords_10_to_15[1] = (lba >> 32) as u32;
                // Number of logical blocks, 0-based.
                command.dwords_10_to_15[2] = blocks - 1;
            }
            inner.requests.start(slot, buffer.take());
            inner.io.submit(slot as u16, &command);
        }
        let guard = AbandonOnDrop::new(|| self.inner.borrow_mut().requests.abandon(slot));
        let (status, buffer) = poll_fn(|cx| {
            let mut inner = self.inner.borrow_mut();
            reap(&mut inner);
            inner.requests.poll_done(slot, cx)
        })
        .await;
        guard.disarm();
        let result = if status_ok(status) { Ok(()) } else { Err(BlockError::Io { lba }) };
        (result, buffer)
    }
}

/// Hands every completed command to its waiter (or frees it if abandoned),
/// then returns the completion entries to the controller.
fn reap(inner: &mut Inner) {
    let mut reaped = false;
    while let Some(completion) = inner.io.pop() {
        reaped = true;
        let slot = usize::from(completion.command_id);
        if inner.requests.complete(slot, completion.status) == Outcome::Unknown {
            crate::fatal(format_args!("nvme: completion for unknown command id {slot}"));
        }
    }
    if reaped {
        inner.io.release_completions();
    }
}

impl BlockDevice for Nvme {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    async fn read(&self, lba: u64, buf: IoBuf) -> IoResult {
        self.transfer(IO_READ, lba, buf).await
    }

    async fn write(&self, lba: u64, buf: IoBuf) -> IoResult {
        self.transfer(IO_WRITE, lba, buf).await
    }

    async fn flush(&self) -> Result<(), BlockError> {
        if !self.volatile_write_cache {
            // Without a volatile write cache every completed write is durable.
            return Ok(());
        }
        self.submit(IO_FLUSH, 0, None, 0, 0).await.0
    }
}
