//! The IDT, the assembly entry stubs, and the two Rust handlers behind them.
//!
//! Exceptions are fatal: the handler reports vector, name, RIP, error code,
//! CR2 and the registers on the serial console and stops the machine with a
//! failure exit (never a hang). Device and timer interrupts only mark an event
//! (`runtime::event::Event::signal`, atomics only) and acknowledge the APIC;
//! tasks do the work. Because the image is compiled with SSE everywhere, the
//! interrupt stub saves the whole extended state (XSAVE, what XCR0 enables)
//! around the Rust handler: the handler's code may use any XMM register.

use core::arch::{asm, global_asm};
use core::fmt::Write;
use core::mem::size_of;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use runtime::event::Event;

use super::boot::stacks;
use super::cpu;
use super::gdt;

/// Vector of the local APIC timer.
pub const VECTOR_TIMER: u8 = 0x20;
/// First vector handed out to devices (MSI-X).
pub const VECTOR_DEVICE_FIRST: u8 = 0x30;
/// The APIC's spurious-interrupt vector (needs no EOI).
pub const VECTOR_SPURIOUS: u8 = 0xFF;

/// Bytes reserved on the stack for XSAVE; `init` checks the CPU needs no more.
const XSAVE_AREA_BYTES: usize = 1024;

global_asm!(
    r#"
.section .text
.balign 16
.global exception_stubs
exception_stubs:
.set vec, 0
.rept 32
    .balign 16
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp exception_common
.set vec, vec + 1
.endr

exception_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    cld
    call exception_handler
1:  cli
    hlt
    jmp 1b

.balign 16
.global irq_stubs
irq_stubs:
.set vec, 32
.rept 224
    .balign 16
    pushq $vec
    jmp irq_common
.set vec, vec + 1
.endr

irq_common:
    pushq %rax
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %rbp
    movq %rsp, %rbp
    subq ${xsave_bytes}, %rsp
    andq $-64, %rsp
    /* XRSTOR faults unless the XSAVE header's reserved bytes are zero */
    movq $0, 512(%rsp)
    movq $0, 520(%rsp)
    movq $0, 528(%rsp)
    movq $0, 536(%rsp)
    movq $0, 544(%rsp)
    movq $0, 552(%rsp)
    movq $0, 560(%rsp)
    movq $0, 568(%rsp)
    movl $-1, %eax
    movl $-1, %edx
    xsave64 (%rsp)
    movq 80(%rbp), %rdi             /* the vector pushed by the stub */
    cld
    call irq_handler
    movl $-1, %eax
    movl $-1, %edx
    xrstor64 (%rsp)
    movq %rbp, %rsp
    popq %rbp
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rax
    addq $8, %rsp
    iretq
"#,
    xsave_bytes = const XSAVE_AREA_BYTES + 64,
    options(att_syntax)
);

unsafe extern "C" {
    static exception_stubs: u8;
    static irq_stubs: u8;
}

#[derive(Clone, Copy)]
#[repr(C)]
struct IdtEntry {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl IdtEntry {
    const MISSING: Self =
        Self { offset_low: 0, selector: 0, ist: 0, type_attr: 0, offset_mid: 0, offset_high: 0, reserved: 0 };

    fn interrupt_gate(handler: u64, ist: u8) -> Self {
        Self {
            offset_low: handler as u16,
            selector: gdt::KERNEL_CODE,
            ist,
            type_attr: 0x8E, // present, ring 0, 64-bit interrupt gate (IF cleared on entry)
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

static mut IDT: [IdtEntry; 256] = [IdtEntry::MISSING; 256];

/// One event per vector: interrupts signal them, the executor delivers them.
pub static EVENTS: [Event; 256] = [const { Event::new() }; 256];
/// Which vectors were signalled since the platform last looked (one bit each),
/// so the idle loop delivers only those instead of scanning 256 events.
static PENDING: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
static NEXT_DEVICE_VECTOR: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(VECTOR_DEVICE_FIRST);

/// Hands out a vector for a device interrupt (MSI-X); each driver owns the
/// vectors it was given and waits on `EVENTS[vector]`.
pub fn allocate_vector() -> u8 {
    let vector = NEXT_DEVICE_VECTOR.fetch_add(1, Ordering::Relaxed);
    // Below the first device vector means the counter wrapped.
    if vector == VECTOR_SPURIOUS || vector < VECTOR_DEVICE_FIRST {
        crate::fatal(format_args!("out of interrupt vectors"));
    }
    vector
}

/// Interrupts taken, for statistics.
pub static INTERRUPT_COUNT: AtomicU64 = AtomicU64::new(0);

#[repr(C, packed(2))]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

/// Builds and loads the IDT. Called once with interrupts off.
pub fn init() {
    let xsave_needed = cpu::cpuid(0xD, 0).ebx as usize;
    if xsave_needed > XSAVE_AREA_BYTES {
        crate::fatal(format_args!(
            "XSAVE area of {xsave_needed} bytes exceeds the {XSAVE_AREA_BYTES} the interrupt stubs reserve"
        ));
    }
    let exception_base = (&raw const exception_stubs) as u64;
    let irq_base = (&raw const irq_stubs) as u64;
    // SAFETY: single-threaded early boot with interrupts off: nothing else
    // reads the IDT while it is filled; every entry points at a stub above.
    unsafe {
        let idt = &raw mut IDT;
        for vector in 0..32u8 {
            let ist = match vector {
                8 => gdt::IST_DOUBLE_FAULT,
                14 => gdt::IST_PAGE_FAULT,
                2 => gdt::IST_NMI,
                18 => gdt::IST_MACHINE_CHECK,
                _ => 0,
            };
            (*idt)[usize::from(vector)] = IdtEntry::interrupt_gate(exception_base + u64::from(vector) * 16, ist);
        }
        for vector in 32..=255u8 {
            (*idt)[usize::from(vector)] = IdtEntry::interrupt_gate(irq_base + u64::from(vector - 32) * 16, 0);
        }
        let pointer = DescriptorPointer { limit: (size_of::<[IdtEntry; 256]>() - 1) as u16, base: idt as u64 };
        asm!("lidt [{}]", in(reg) &raw const pointer, options(readonly, nostack, preserves_flags));
    }
    mask_legacy_pic();
}

/// The 8259 PICs would deliver the PIT on vector 8 (#DF) if left as the BIOS
/// set them: remap them above the exceptions, then mask every line. The APIC
/// and MSI-X carry all interrupts we use.
fn mask_legacy_pic() {
    // SAFETY: the legacy PICs are ours alone; this is the standard ICW
    // sequence, and masking all lines cannot break anything we rely on.
    unsafe {
        cpu::outb(0x20, 0x11);
        cpu::outb(0xA0, 0x11);
        cpu::outb(0x21, 0xE0);
        cpu::outb(0xA1, 0xE8);
        cpu::outb(0x21, 4);
        cpu::outb(0xA1, 2);
        cpu::outb(0x21, 1);
        cpu::outb(0xA1, 1);
        cpu::outb(0x21, 0xFF);
        cpu::outb(0xA1, 0xFF);
    }
}

/// Hands every signalled vector's event to its waiting task. Thread context.
pub fn deliver_pending() -> bool {
    let mut any = false;
    for (word_index, word) in PENDING.iter().enumerate() {
        let mut bits = word.swap(0, Ordering::AcqRel);
        while bits != 0 {
            let bit = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            any |= EVENTS[word_index * 64 + bit].deliver();
        }
    }
    any
}

/// Whether any vector was signalled and not yet delivered.
pub fn has_pending() -> bool {
    PENDING.iter().any(|word| word.load(Ordering::Acquire) != 0)
}

#[unsafe(no_mangle)]
extern "C" fn irq_handler(vector: u64) {
    let vector = (vector & 0xFF) as usize;
    INTERRUPT_COUNT.fetch_add(1, Ordering::Relaxed);
    EVENTS[vector].signal();
    PENDING[vector / 64].fetch_or(1 << (vector % 64), Ordering::AcqRel);
    if vector != usize::from(VECTOR_SPURIOUS) {
        crate::apic::end_of_interrupt();
    }
}

/// The registers as `exception_common` pushed them, lowest address first.
#[repr(C)]
struct ExceptionFrame {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rbp: u64,
    rdi: u64,
    rsi: u64,
    rdx: u64,
    rcx: u64,
    rbx: u64,
    rax: u64,
    vector: u64,
    error_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

fn exception_name(vector: u64) -> &'static str {
    match vector {
        0 => "#DE divide error",
        1 => "#DB debug",
        2 => "NMI",
        3 => "#BP breakpoint",
        4 => "#OF overflow",
        5 => "#BR bound range",
        6 => "#UD invalid opcode",
        7 => "#NM device not available",
        8 => "#DF double fault",
        10 => "#TS invalid TSS",
        11 => "#NP segment not present",
        12 => "#SS stack fault",
        13 => "#GP general protection",
        14 => "#PF page fault",
        16 => "#MF x87 floating point",
        17 => "#AC alignment check",
        18 => "#MC machine check",
        19 => "#XM SIMD floating point",
        20 => "#VE virtualization",
        21 => "#CP control protection",
        _ => "reserved",
    }
}

static IN_EXCEPTION: AtomicBool = AtomicBool::new(false);

#[unsafe(no_mangle)]
extern "C" fn exception_handler(frame: &ExceptionFrame) -> ! {
    if IN_EXCEPTION.swap(true, Ordering::SeqCst) {
        // A fault while reporting a fault: say the least and stop.
        crate::serial::write_raw("FATAL nested exception while reporting an exception\n");
        crate::exit::exit_qemu(crate::exit::ExitCode::Failure);
    }
    let cr2 = cpu::read_cr2();
    let mut out = crate::serial::RawWriter;
    let _ = write!(
        out,
        "FATAL exception vector={} name=\"{}\" rip={:#x} error={:#x} cr2={:#x} rsp={:#x} rflags={:#x} cs={:#x}",
        frame.vector,
        exception_name(frame.vector),
        frame.rip,
        frame.error_code,
        cr2,
        frame.rsp,
        frame.rflags,
        frame.cs,
    );
    if frame.vector == 14 || frame.vector == 8 {
        for stack in stacks() {
            if (stack.guard..stack.guard + 4096).contains(&cr2) {
                let _ = write!(out, " guard={}-stack (stack overflow)", stack.name);
            }
        }
        if cr2 < 4096 {
            let _ = write!(out, " null-pointer");
        }
        if frame.vector == 14 {
            let e = frame.error_code;
            let _ = write!(
                out,
                " access={}{}{}",
                if e & 2 != 0 { "write" } else { "read" },
                if e & 1 != 0 { ",protection" } else { ",not-present" },
                if e & 16 != 0 { ",instruction-fetch" } else { "" },
            );
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "FATAL registers rax={:#x} rbx={:#x} rcx={:#x} rdx={:#x} rsi={:#x} rdi={:#x} rbp={:#x} r8={:#x} r9={:#x} r10={:#x} r11={:#x} r12={:#x} r13={:#x} r14={:#x} r15={:#x}",
        frame.rax,
        frame.rbx,
        frame.rcx,
        frame.rdx,
        frame.rsi,
        frame.rdi,
        frame.rbp,
        frame.r8,
        frame.r9,
        frame.r10,
        frame.r11,
        frame.r12,
        frame.r13,
        frame.r14,
        frame.r15,
    );
    crate::exit::exit_qemu(crate::exit::ExitCode::Failure)
}
