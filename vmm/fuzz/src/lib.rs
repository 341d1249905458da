//! What the fuzz targets share: a small guest memory fenced by guard pages, a split virtqueue laid
//! out in it from fuzzer bytes, a device run synchronously over one notification, a scratch
//! disk file for virtio-blk, and guest Ethernet frames for the user network ([`frames`]).
//!
//! Everything here plays the guest driver, so nothing here may be trusted by the device: the
//! descriptors, rings, lengths and addresses come straight from the fuzzer. The harness only
//! keeps the contract the real transport keeps (a device is activated with queues that passed
//! `is_valid`, at aligned addresses, as `MmioTransport` hands them over).

pub mod frames;

use arbitrary::Arbitrary;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use virtio_queue::QueueT;
use vm_memory::{
    Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, GuestRegionMmap,
    MemoryRegionAddress, MmapRegion,
};
use vmm::devices::virtio::{Activation, Interrupt, Queue, VirtioDevice};
use vmm_sys_util::eventfd::EventFd;

/// Guest-physical bytes: small, so random addresses often land inside.
pub const MEM_BYTES: u64 = 0x1_0000;
/// The two-region layout leaves this hole in the middle: `[0, 32K)` and `[40K, 64K)`.
pub const HOLE: (u64, u64) = (0x8000, 0xa000);

const PAGE: usize = 4096;

/// The two guest memory layouts, mapped once per process and cleared before each input.
struct Layouts {
    one_region: GuestMemoryMmap,
    two_regions: GuestMemoryMmap,
}

static LAYOUTS: OnceLock<Layouts> = OnceLock::new();
static ZEROS: [u8; MEM_BYTES as usize] = [0; MEM_BYTES as usize];

/// One guest region whose host mapping has an inaccessible page on either side, so a host access
/// that strays past the region faults (and libFuzzer reports it) instead of hitting other memory.
fn guarded_region(guest_base: u64, size: usize) -> GuestRegionMmap {
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    // SAFETY: a new anonymous mapping at an address of the kernel's choosing; it aliases nothing.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size + 2 * PAGE,
            libc::PROT_NONE,
            flags,
            -1,
            0,
        )
    };
    assert_ne!(base, libc::MAP_FAILED, "mmap of the guest memory failed");
    let inner = base.cast::<u8>().wrapping_add(PAGE);
    // SAFETY: `inner..inner + size` lies inside the mapping just made, which nothing else uses.
    let rc = unsafe { libc::mprotect(inner.cast(), size, prot) };
    assert_eq!(rc, 0, "mprotect of the guest memory failed");
    // SAFETY: `inner` is page-aligned and `inner..inner + size` is a mapping of ours with exactly
    // these protections and flags; it is never unmapped, so it outlives every user.
    let region = unsafe { MmapRegion::build_raw(inner, size, prot, flags) }
        .expect("a guest region over our own mapping");
    GuestRegionMmap::new(region, GuestAddress(guest_base)).expect("a guest region")
}

/// A cleared guest memory of [`MEM_BYTES`]: one region, or two with [`HOLE`] between them.
pub fn guest_memory(two_regions: bool) -> GuestMemoryMmap {
    let layouts = LAYOUTS.get_or_init(|| {
        let size = MEM_BYTES as usize;
        let (hole_start, hole_end) = HOLE;
        Layouts {
            one_region: GuestMemoryMmap::from_regions(vec![guarded_region(0, size)])
                .expect("one-region layout"),
            two_regions: GuestMemoryMmap::from_regions(vec![
                guarded_region(0, hole_start as usize),
                guarded_region(hole_end, (MEM_BYTES - hole_end) as usize),
            ])
            .expect("two-region layout"),
        }
    });
    let mem = if two_regions {
        layouts.two_regions.clone()
    } else {
        layouts.one_region.clone()
    };
    for region in mem.iter() {
        let len = region.len() as usize;
        region
            .write_slice(&ZEROS[..len], MemoryRegionAddress(0))
            .expect("clearing guest memory");
    }
    mem
}

/// A guest address from 32 fuzzer bits: mostly in `0..128K` (guest memory, its end, the hole and
/// just beyond), sometimes above 4 GiB or right below `u64::MAX` (overflow at the end).
pub fn address(raw: u32) -> u64 {
    match raw >> 28 {
        0xf => u64::MAX - u64::from(raw & 0xffff),
        0xe => (1 << 32) + u64::from(raw & 0xffff),
        _ => u64::from(raw & 0x1_ffff),
    }
}

/// A buffer length from 32 fuzzer bits: mostly up to 4 KiB, sometimes up to 128 KiB, sometimes
/// anything (up to 4 GiB).
pub fn length(raw: u32) -> u32 {
    match raw >> 28 {
        0xf => raw,
        0xe => raw & 0x1_ffff,
        _ => raw & 0xfff,
    }
}

/// Raw bytes the guest writes at a guest address (anything: headers, indirect tables, rings).
#[derive(Arbitrary, Debug)]
pub struct Patch {
    pub addr: u16,
    pub bytes: Vec<u8>,
}

/// Most patches applied per input, and most bytes per patch.
const MAX_PATCHES: usize = 32;
const MAX_PATCH_BYTES: usize = 512;

/// Writes the patches into guest memory; parts that fall outside it are dropped.
pub fn apply(mem: &GuestMemoryMmap, patches: &[Patch]) {
    for patch in patches.iter().take(MAX_PATCHES) {
        let bytes = &patch.bytes[..patch.bytes.len().min(MAX_PATCH_BYTES)];
        // `write` stops at the end of guest memory or at the hole: what fits is written.
        let _ = mem.write(bytes, GuestAddress(u64::from(patch.addr)));
    }
}

/// One descriptor-table entry as the fuzzer chooses it (`struct virtq_desc`).
#[derive(Arbitrary, Debug)]
pub struct Descriptor {
    pub addr: u32,
    pub len: u32,
    /// The low three bits (NEXT, WRITE, INDIRECT) as given; with the top bit set, all 16 as given.
    pub flags: u16,
    /// With the top bit clear, an index inside the table; with it set, any index.
    pub next: u16,
}

/// A split virtqueue in guest memory, as a (hostile) driver sets it up (virtio 1.2 §2.7).
#[derive(Arbitrary, Debug)]
pub struct Ring {
    pub two_regions: bool,
    /// Queue size is `1 << (size_log2 % 9)`, capped by the device's maximum.
    pub size_log2: u8,
    /// Ring addresses in the 64 KiB (aligned down as the transport requires).
    pub desc_table: u16,
    pub avail_ring: u16,
    pub used_ring: u16,
    pub event_idx: bool,
    /// Where the device's indices start (any value is reachable after enough requests).
    pub next_avail: u16,
    pub avail_flags: u16,
    /// `avail.idx - next_avail`: with the top bit clear, at most the queue size; else anything.
    pub avail_ahead: u16,
    pub used_event: u16,
    /// Available-ring entries from `next_avail` on; top bit clear: a head inside the table.
    pub heads: Vec<u16>,
    /// The descriptor table from entry 0.
    pub descriptors: Vec<Descriptor>,
    /// Written last, over anything above.
    pub patches: Vec<Patch>,
}

/// Lays `ring` out in `mem` (cleared by [`guest_memory`]) and returns the queue the transport
/// would hand the device, or `None` where the transport would refuse it (rings outside memory).
pub fn queue(mem: &GuestMemoryMmap, ring: &Ring, max_size: u16) -> Option<Queue> {
    let size = (1u16 << (ring.size_log2 % 9)).min(max_size);
    let mut queue = Queue::new(max_size).ok()?;
    queue.set_size(size);
    queue.set_desc_table_address(Some(u32::from(ring.desc_table & !0xf)), Some(0));
    queue.set_avail_ring_address(Some(u32::from(ring.avail_ring & !0x1)), Some(0));
    queue.set_used_ring_address(Some(u32::from(ring.used_ring & !0x3)), Some(0));
    queue.set_ready(true);
    if queue.size() != size || !queue.is_valid(mem) {
        return None;
    }
    queue.set_event_idx(ring.event_idx);
    queue.set_next_avail(ring.next_avail);
    queue.set_next_used(ring.next_avail);

    let size64 = u64::from(size);
    let table = queue.desc_table();
    for (i, d) in ring.descriptors.iter().take(size.into()).enumerate() {
        let flags = if d.flags & 0x8000 == 0 {
            d.flags & 0x7
        } else {
            d.flags
        };
        let next = if d.next & 0x8000 == 0 {
            d.next % size
        } else {
            d.next
        };
        let mut raw = [0u8; 16];
        raw[0..8].copy_from_slice(&address(d.addr).to_le_bytes());
        raw[8..12].copy_from_slice(&length(d.len).to_le_bytes());
        raw[12..14].copy_from_slice(&flags.to_le_bytes());
        raw[14..16].copy_from_slice(&next.to_le_bytes());
        let _ = mem.write_slice(&raw, GuestAddress(table + 16 * i as u64));
    }

    let avail = queue.avail_ring();
    let ahead = if ring.avail_ahead & 0x8000 == 0 {
        ring.avail_ahead % (size + 1)
    } else {
        ring.avail_ahead
    };
    let idx = ring.next_avail.wrapping_add(ahead);
    let _ = mem.write_obj(ring.avail_flags.to_le(), GuestAddress(avail));
    let _ = mem.write_obj(idx.to_le(), GuestAddress(avail + 2));
    for (i, &head) in ring.heads.iter().take(size.into()).enumerate() {
        let slot = u64::from(ring.next_avail.wrapping_add(i as u16) % size);
        let head = if head & 0x8000 == 0 {
            head % size
        } else {
            head
        };
        let _ = mem.write_obj(head.to_le(), GuestAddress(avail + 4 + 2 * slot));
    }
    let _ = mem.write_obj(
        ring.used_event.to_le(),
        GuestAddress(avail + 4 + 2 * size64),
    );

    apply(mem, &ring.patches);
    Some(queue)
}

/// Activates `device` with `queues` over `mem` as the transport does at DRIVER_OK, notifies every
/// queue once, then resets the device. Reset stops and joins its I/O thread; the notifications
/// were signalled before the stop event, and the thread serves every ready event of an epoll
/// round before it looks at the stop flag, so each queue is served exactly once per input — the
/// run is as deterministic as the device.
pub fn run_device(
    device: &mut dyn VirtioDevice,
    mem: &GuestMemoryMmap,
    queues: Vec<Queue>,
    features: u64,
) {
    let events: Vec<EventFd> = queues
        .iter()
        .map(|_| EventFd::new(libc::EFD_NONBLOCK).expect("eventfd"))
        .collect();
    let queue_events = events
        .iter()
        .map(|e| e.try_clone().expect("eventfd clone"))
        .collect();
    let irqfd = EventFd::new(libc::EFD_NONBLOCK).expect("eventfd");
    let activation = Activation {
        mem: mem.clone(),
        queues,
        queue_events,
        interrupt: Arc::new(Interrupt::new(irqfd)),
        features,
    };
    if device.activate(activation).is_err() {
        // Only resources (threads, epoll) can fail here; nothing the guest controls.
        return;
    }
    for event in &events {
        event.write(1).expect("notify");
    }
    device.reset();
}

/// Largest scratch disk, in bytes.
pub const MAX_DISK_BYTES: usize = 16 * 1024;

/// The byte the scratch disk holds at `offset` before the guest writes to it.
pub fn disk_pattern(offset: usize) -> u8 {
    ((offset / 512) as u8).wrapping_mul(0x3b) ^ (offset as u8)
}

/// A disk image file with no name (so runs leave nothing behind), in tmpfs where there is one
/// (a write-through disk syncs on every write). `path` is its `/proc/self/fd` name, which the
/// device opens — and locks — like any other image.
pub struct ScratchDisk {
    file: File,
    path: PathBuf,
    pattern: Vec<u8>,
}

static DISK: OnceLock<ScratchDisk> = OnceLock::new();

impl ScratchDisk {
    pub fn get() -> &'static ScratchDisk {
        DISK.get_or_init(|| {
            let shm = Path::new("/dev/shm");
            let dir = if shm.is_dir() {
                shm.to_path_buf()
            } else {
                std::env::temp_dir()
            };
            let file = unnamed_file(&dir).expect("a scratch disk file");
            let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
            ScratchDisk {
                file,
                path,
                pattern: (0..MAX_DISK_BYTES).map(disk_pattern).collect(),
            }
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the disk `len` bytes (at most [`MAX_DISK_BYTES`]) of [`disk_pattern`].
    pub fn reset(&self, len: usize) {
        let len = len.min(MAX_DISK_BYTES);
        self.file.set_len(0).expect("truncate the scratch disk");
        self.file
            .write_all_at(&self.pattern[..len], 0)
            .expect("write the scratch disk");
        self.file
            .set_len(len as u64)
            .expect("size the scratch disk");
    }

    /// Panics unless the file is still `len` bytes and, if `untouched`, still holds the pattern:
    /// a read-only or snapshot disk must never change, and no disk may grow.
    pub fn check(&self, len: usize, untouched: bool) {
        let len = len.min(MAX_DISK_BYTES);
        let size = self.file.metadata().expect("scratch disk metadata").len();
        assert_eq!(size, len as u64, "the device changed the disk file's size");
        if untouched {
            let mut now = vec![0u8; len];
            self.file
                .read_exact_at(&mut now, 0)
                .expect("read the scratch disk");
            assert!(
                now == self.pattern[..len],
                "the device wrote to a read-only or snapshot disk's file"
            );
        }
    }
}

/// A new file in `dir` with no name: `O_TMPFILE`, or created and unlinked at once.
fn unnamed_file(dir: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).mode(0o600);
    if let Ok(file) = options.clone().custom_flags(libc::O_TMPFILE).open(dir) {
        return Ok(file);
    }
    let path = dir.join(format!("noa-vmm-fuzz-disk-{}", std::process::id()));
    let file = options.create_new(true).open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}
