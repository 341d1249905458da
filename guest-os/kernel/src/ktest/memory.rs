//! Kernel tests of memory: frames, the heap, the kernel's page tables.

use super::{TestResult, ensure};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::AtomicU32;
use hal_pv::mm::{PAGE_SIZE, frames, paging};

pub fn frames_alloc_free() -> TestResult {
    let before = frames::free_bytes();
    let a = frames::alloc().ok_or("alloc failed")?;
    let b = frames::alloc().ok_or("alloc failed")?;
    let (a_phys, b_phys) = (a.phys(), b.phys());
    ensure!(a_phys != b_phys, "same frame twice: {a_phys:?}");
    ensure!(
        a_phys.0 % PAGE_SIZE == 0 && b_phys.0 % PAGE_SIZE == 0,
        "unaligned frames {a_phys:?} {b_phys:?}"
    );
    ensure!(
        frames::free_bytes() == before - 2 * PAGE_SIZE,
        "two allocations not counted"
    );
    drop(a);
    drop(b);
    ensure!(
        frames::free_bytes() == before,
        "leak: {} -> {} bytes free",
        before,
        frames::free_bytes()
    );
    let c = frames::alloc().ok_or("alloc failed")?;
    ensure!(
        c.phys() == b_phys,
        "last freed frame not reused first: got {:?}, freed {b_phys:?}",
        c.phys()
    );
    ensure!(
        frames::usable_ram_bytes() > before / 2,
        "usable RAM {} below free {}",
        frames::usable_ram_bytes(),
        before
    );
    Ok(())
}

pub fn frames_zeroed_and_owned() -> TestResult {
    let mut frame = frames::alloc_zeroed().ok_or("alloc_zeroed failed")?;
    ensure!(
        frame.words().iter().all(|&w| w == 0),
        "alloc_zeroed gave a dirty frame"
    );
    for (i, word) in frame.words_mut().iter_mut().enumerate() {
        *word = 0xa5a5_0000 + i as u64;
    }
    let phys = frame.phys();
    drop(frame);
    // A recycled frame comes back from `alloc` as it was (only the free-list link in word 0).
    let again = frames::alloc().ok_or("alloc failed")?;
    ensure!(again.phys() == phys, "freed frame not reused");
    let intact = again.words()[1..]
        .iter()
        .enumerate()
        .all(|(i, &w)| w == 0xa5a5_0001 + i as u64);
    ensure!(intact, "a frame's content changed while it was free");
    Ok(())
}

/// Copy-on-write copies, one and several at once: made by the host where ring 0 is emulated
/// (port 0xf0), by the CPU elsewhere; either way byte for byte.
pub fn pages_duplicate_exactly() -> TestResult {
    let pattern = |seed: usize| -> Vec<u8> { (0..4096).map(|i| (i * 7 + seed) as u8).collect() };
    let first = frames::Page::new_zeroed().ok_or("no page")?;
    let second = frames::Page::new_zeroed().ok_or("no page")?;
    first.write(0, &pattern(3));
    second.write(0, &pattern(11));
    let mut out = alloc::vec![0u8; 4096];
    let copy = first.duplicate().ok_or("duplicate failed")?;
    ensure!(copy.phys() != first.phys(), "the copy is the same frame");
    copy.read(0, &mut out);
    ensure!(out == pattern(3), "duplicate differs from its page");
    let sources = [first.clone(), second.clone(), first.clone()];
    let copies = frames::Page::duplicate_all(&sources);
    ensure!(copies.len() == 3, "{} copies of 3 pages", copies.len());
    for (copy, seed) in copies.iter().zip([3, 11, 3]) {
        copy.read(0, &mut out);
        ensure!(
            out == pattern(seed),
            "duplicate_all copy of seed {seed} differs"
        );
    }
    // The sources are untouched.
    second.read(0, &mut out);
    ensure!(out == pattern(11), "a source changed");
    Ok(())
}

pub fn heap_small_and_large() -> TestResult {
    let small: Vec<Box<u64>> = (0..1000).map(Box::new).collect();
    ensure!(
        small.iter().enumerate().all(|(i, b)| **b == i as u64),
        "small boxes corrupted"
    );
    // Larger than a heap chunk: the heap must grow. Touch one byte per page only: every ring-0
    // instruction is emulated on PVM hosts, so a byte-by-byte fill of megabytes takes seconds.
    let len = (2 << 20) + (512 << 10);
    let mut big: Vec<u8> = alloc::vec![0; len];
    for (i, page) in big.chunks_mut(PAGE_SIZE as usize).enumerate() {
        page[0] = i as u8;
    }
    let intact = big
        .chunks(PAGE_SIZE as usize)
        .enumerate()
        .all(|(i, page)| page[0] == i as u8);
    ensure!(intact, "large allocation corrupted");
    drop(big);
    let again: Box<[u64; 512]> = Box::new([9; 512]);
    ensure!(again[511] == 9, "allocation after a large free corrupted");
    Ok(())
}

pub fn paging_kernel_permissions() -> TestResult {
    let code = kernel_main_address();
    let (_, code_flags) = paging::translate(code).ok_or("kernel code unmapped")?;
    ensure!(code_flags & paging::NO_EXECUTE == 0, "kernel code is NX");
    ensure!(
        code_flags & paging::WRITABLE == 0,
        "kernel code is writable"
    );
    static DATA: AtomicU32 = AtomicU32::new(0);
    let data = &DATA as *const AtomicU32 as u64;
    let (_, data_flags) = paging::translate(data).ok_or("kernel data unmapped")?;
    ensure!(
        data_flags & paging::NO_EXECUTE != 0,
        "kernel data is executable"
    );
    ensure!(
        data_flags & paging::WRITABLE != 0,
        "kernel data is read-only"
    );
    let text: &str = "rodata";
    let (_, ro_flags) = paging::translate(text.as_ptr() as u64).ok_or("rodata unmapped")?;
    ensure!(
        ro_flags & (paging::NO_EXECUTE | paging::WRITABLE) == paging::NO_EXECUTE,
        "rodata flags {ro_flags:#x}"
    );
    ensure!(
        paging::translate(0x1000).is_none(),
        "the lower half is mapped in the kernel tables"
    );
    Ok(())
}

fn kernel_main_address() -> u64 {
    let f: fn(hal_pv::BootInfo) -> ! = crate::kernel_main;
    f as usize as u64
}

pub fn paging_direct_map() -> TestResult {
    let frame = frames::alloc().ok_or("alloc failed")?;
    let virt = frame.words().as_ptr() as u64;
    let (phys, flags) = paging::translate(virt).ok_or("direct map misses a frame")?;
    ensure!(
        phys == frame.phys(),
        "direct map of {:?} translates to {phys:?}",
        frame.phys()
    );
    ensure!(flags & paging::NO_EXECUTE != 0, "direct map is executable");
    Ok(())
}
