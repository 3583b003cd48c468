//! PVH entry: QEMU (or any PVH loader) enters `pvh_start32` in 32-bit protected
//! mode with paging off and `%ebx` pointing at the `hvm_start_info`.
//!
//! Before any compiled Rust runs, the trampoline checks that the CPU has every
//! feature the image was compiled to assume (see `x86_64-rustcore.json`): the
//! compiler may emit SSE4.2/AES-NI/PCLMULQDQ/BMI instructions anywhere, so a
//! missing feature must stop the boot here, with a message, instead of a #UD
//! later. It then enables SSE state (CR4.OSFXSR/OSXSAVE, XCR0 = x87|SSE), NX
//! (EFER.NXE), write protection in ring 0 (CR0.WP), identity-maps 4 GiB with
//! 2 MiB pages to reach long mode, and calls `kmain(start_info)` on the main
//! stack. The Rust side replaces these tables with W^X ones (`paging.rs`)
//! right away.
//!
//! No AVX, in the code generation or in XCR0 (so crates that detect CPU
//! features at run time do not pick AVX2 paths either): QEMU 7.2's TCG, which
//! runs the image in CI and on machines without KVM, emulates AVX several
//! times slower than SSE. In the guest, AES-128-GCM sealed 11-33 MB/s with
//! AVX (the figure flipped between builds with the compiler's choice of VEX
//! instructions) and 61 MB/s without; on hardware the AES-NI and PCLMULQDQ
//! paths run as fast in their SSE encodings.

use core::arch::global_asm;

use crate::sym_addr;

/// Main stack size; TLS handshakes and the crypto code need deep stacks.
pub const MAIN_STACK_BYTES: usize = 1024 * 1024;
/// Stacks for the exceptions that must work when the main stack is gone.
pub const IST_STACK_BYTES: usize = 16 * 1024;

global_asm!(
    r#"
.set REQ_ECX1, (1 << 0) | (1 << 1) | (1 << 9) | (1 << 19) | (1 << 20) | (1 << 23) | (1 << 25) | (1 << 26)
.set REQ_EDX1, (1 << 24) | (1 << 25) | (1 << 26)
.set REQ_EBX7, (1 << 3) | (1 << 8)
.set REQ_EDX_EXT, (1 << 20) | (1 << 29)

.section .note.Xen, "a", @note
.balign 4
.long 4
.long 8
.long 18               /* XEN_ELFNOTE_PHYS32_ENTRY */
.asciz "Xen"
.balign 4
.quad pvh_start32      /* QEMU reads an ELF64 note's payload as 8 bytes */
.balign 4

.section .text.boot32, "ax", @progbits
.code32
.global pvh_start32
pvh_start32:
    cli
    cld
    movl %ebx, %esi                 /* hvm_start_info*, kept in esi throughout */

    /* --- refuse CPUs that lack a feature the compiler was told to assume --- */
    xorl %eax, %eax
    cpuid
    cmpl $0xd, %eax
    jb cpu_unsupported
    movl $1, %eax
    cpuid
    andl $REQ_ECX1, %ecx
    cmpl $REQ_ECX1, %ecx
    jne cpu_unsupported
    andl $REQ_EDX1, %edx
    cmpl $REQ_EDX1, %edx
    jne cpu_unsupported
    movl $7, %eax
    xorl %ecx, %ecx
    cpuid
    andl $REQ_EBX7, %ebx
    cmpl $REQ_EBX7, %ebx
    jne cpu_unsupported
    movl $0x80000001, %eax
    cpuid
    andl $REQ_EDX_EXT, %edx
    cmpl $REQ_EDX_EXT, %edx
    jne cpu_unsupported
    movl $0xd, %eax                 /* XCR0 must allow x87|SSE state */
    xorl %ecx, %ecx
    cpuid
    andl $3, %eax
    cmpl $3, %eax
    jne cpu_unsupported

    /* --- zero .bss (boot page tables live there) --- */
    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    shrl $2, %ecx
    xorl %eax, %eax
    rep stosl

    /* --- 4 GiB identity map, 2 MiB pages: only to reach long mode --- */
    movl $boot_pdpt, %eax
    orl  $0x3, %eax
    movl %eax, boot_pml4
    movl $boot_pd, %eax
    orl  $0x3, %eax
    movl $boot_pdpt, %edi
    movl $4, %ecx
1:  movl %eax, (%edi)
    addl $4096, %eax
    addl $8, %edi
    loop 1b
    movl $boot_pd, %edi
    movl $0x83, %eax
    movl $2048, %ecx
2:  movl %eax, (%edi)
    addl $0x200000, %eax
    addl $8, %edi
    loop 2b

    /* CR4: PAE | OSFXSR | OSXMMEXCPT | OSXSAVE */
    movl %cr4, %eax
    orl  $((1 << 5) | (1 << 9) | (1 << 10) | (1 << 18)), %eax
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3
    /* EFER: LME | NXE */
    movl $0xC0000080, %ecx
    rdmsr
    orl  $((1 << 8) | (1 << 11)), %eax
    wrmsr
    /* CR0: PG | WP | NE | MP | PE, and EM/TS clear so SSE does not trap */
    movl %cr0, %eax
    andl $~((1 << 2) | (1 << 3)), %eax
    orl  $((1 << 31) | (1 << 16) | (1 << 5) | (1 << 1) | 1), %eax
    movl %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $long_mode_entry

cpu_unsupported:
    movl $cpu_unsupported_msg, %esi
3:  lodsb
    testb %al, %al
    jz 4f
    movw $0x3f8, %dx
    outb %al, %dx
    jmp 3b
4:  movw $0xf4, %dx                 /* isa-debug-exit: report failure under QEMU */
    movl $0x11, %eax
    outl %eax, %dx
5:  hlt
    jmp 5b

.code64
long_mode_entry:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    /* XCR0 = x87 | SSE: no AVX state, so nothing detects and uses AVX */
    xorl %ecx, %ecx
    movl $3, %eax
    xorl %edx, %edx
    xsetbv
    fninit
    leaq __stack_main_top(%rip), %rsp
    movl %esi, %edi                 /* zero-extended start_info pointer */
    xorl %ebp, %ebp
    call kmain
6:  cli
    hlt
    jmp 6b

.section .rodata.boot, "a", @progbits
cpu_unsupported_msg:
    .ascii "rustcore: boot refused: this CPU lacks a feature the image requires "
    .ascii "(SSE3, SSSE3, SSE4.1, SSE4.2, POPCNT, AES-NI, PCLMULQDQ, XSAVE, "
    .asciz "BMI1, BMI2, NX, long mode). Under QEMU use -cpu max (TCG) or -cpu host (KVM).\r\n"
.balign 16
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF        /* 0x08: 64-bit code */
    .quad 0x00CF92000000FFFF        /* 0x10: data */
boot_gdt_end:
.balign 4
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt

.section .bss.boot, "aw", @nobits
.balign 4096
boot_pml4: .skip 4096
boot_pdpt: .skip 4096
boot_pd:   .skip 4096 * 4

/* Each stack sits on top of a guard page that paging.rs leaves unmapped. */
.section .stacks, "aw", @nobits
.balign 4096
.global __stack_main_guard
__stack_main_guard: .skip 4096
.skip {main_stack}
.global __stack_main_top
__stack_main_top:
.global __stack_df_guard
__stack_df_guard: .skip 4096
.skip {ist_stack}
.global __stack_df_top
__stack_df_top:
.global __stack_pf_guard
__stack_pf_guard: .skip 4096
.skip {ist_stack}
.global __stack_pf_top
__stack_pf_top:
.global __stack_nmi_guard
__stack_nmi_guard: .skip 4096
.skip {ist_stack}
.global __stack_nmi_top
__stack_nmi_top:
.global __stack_mc_guard
__stack_mc_guard: .skip 4096
.skip {ist_stack}
.global __stack_mc_top
__stack_mc_top:

.text
"#,
    main_stack = const MAIN_STACK_BYTES,
    ist_stack = const IST_STACK_BYTES,
    options(att_syntax)
);

/// Addresses the linker script and the trampoline define.
pub mod symbols {
    unsafe extern "C" {
        pub static __kernel_start: u8;
        pub static __text_start: u8;
        pub static __text_end: u8;
        pub static __rodata_start: u8;
        pub static __rodata_end: u8;
        pub static __data_start: u8;
        pub static __data_end: u8;
        pub static __stacks_start: u8;
        pub static __stacks_end: u8;
        pub static __kernel_end: u8;
        pub static __stack_main_guard: u8;
        pub static __stack_main_top: u8;
        pub static __stack_df_guard: u8;
        pub static __stack_df_top: u8;
        pub static __stack_pf_guard: u8;
        pub static __stack_pf_top: u8;
        pub static __stack_nmi_guard: u8;
        pub static __stack_nmi_top: u8;
        pub static __stack_mc_guard: u8;
        pub static __stack_mc_top: u8;
    }

    /// The address of a linker symbol (never dereferenced).
    #[macro_export]
    macro_rules! sym_addr {
        ($name:ident) => {
            (&raw const $crate::arch::boot::symbols::$name) as u64
        };
    }
}

/// A stack and the unmapped guard page below it.
#[derive(Clone, Copy, Debug)]
pub struct StackRegion {
    pub name: &'static str,
    pub guard: u64,
    pub top: u64,
}

/// Every stack the kernel has, for paging (guards) and fault reports.
pub fn stacks() -> [StackRegion; 5] {
    [
        StackRegion { name: "main", guard: sym_addr!(__stack_main_guard), top: sym_addr!(__stack_main_top) },
        StackRegion { name: "double-fault", guard: sym_addr!(__stack_df_guard), top: sym_addr!(__stack_df_top) },
        StackRegion { name: "page-fault", guard: sym_addr!(__stack_pf_guard), top: sym_addr!(__stack_pf_top) },
        StackRegion { name: "nmi", guard: sym_addr!(__stack_nmi_guard), top: sym_addr!(__stack_nmi_top) },
        StackRegion { name: "machine-check", guard: sym_addr!(__stack_mc_guard), top: sym_addr!(__stack_mc_top) },
    ]
}
