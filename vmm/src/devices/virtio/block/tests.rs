//! virtio-blk against a real split virtqueue: the tests lay out the descriptor table and the
//! rings in guest memory byte by byte, as a driver would (virtio 1.2 §2.7), activate the device
//! through [`VirtioDevice`], notify it through its queue eventfd, and wait for the I/O thread to
//! move the used index. Disk images are real files in a temporary directory.
//!
//! Paths go through `super::super` (the virtio framework), never `crate::`, so the same tests
//! also run from `tests/virtio_block_module.rs`, where the framework sits at the crate root.

use super::super::interrupt::USED_BUFFER;
use super::super::{Activation, Interrupt, Queue, VirtioDevice, device_type, features as common};
use super::request::{S_IOERR, S_OK, S_UNSUPP, T_FLUSH, T_GET_ID, T_IN, T_OUT};
use super::{Block, BlockError, features};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use virtio_queue::QueueT;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

const MEM_BYTES: u64 = 4 << 20;
const QUEUE_SIZE: u16 = 256;
const DESC_TABLE: u64 = 0x1000; // 256 × 16 bytes
const AVAIL_RING: u64 = 0x2000; // flags, idx, ring[256], used_event
const USED_RING: u64 = 0x3000; // flags, idx, ring[256] of (id, len), avail_event
const HEADER: u64 = 0x8000;
const STATUS: u64 = 0x9000;
const DATA: u64 = 0x10000; // to the end of memory
const OUTSIDE: u64 = 0x4000_0000; // no guest memory there

const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;

/// One buffer of a chain: guest address, length, device-writable.
type Buf = (u64, u32, bool);

fn readable(addr: u64, len: u32) -> Buf {
    (addr, len, false)
}

fn writable(addr: u64, len: u32) -> Buf {
    (addr, len, true)
}

/// The driver side of one device: guest memory with the queue in it.
struct Driver {
    mem: GuestMemoryMmap,
    block: Block,
    notify: EventFd,
    interrupt: Arc<Interrupt>,
    avail_idx: u16,
    next_desc: u16,
}

impl Driver {
    fn new(block: Block) -> Driver {
        Driver::with_features(block, true, true)
    }

    /// `event_idx`, `flush`: whether the driver accepted those features.
    fn with_features(block: Block, event_idx: bool, flush: bool) -> Driver {
        let mem =
            GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM_BYTES as usize)]).unwrap();
        let mut driver = Driver {
            mem,
            block,
            notify: EventFd::new(libc::EFD_NONBLOCK).unwrap(),
            interrupt: Arc::new(Interrupt::new(EventFd::new(libc::EFD_NONBLOCK).unwrap())),
            avail_idx: 0,
            next_desc: 0,
        };
        driver.activate(event_idx, flush);
        driver
    }

    /// What the transport does at DRIVER_OK.
    fn activate(&mut self, event_idx: bool, flush: bool) {
        let mut queue = Queue::new(QUEUE_SIZE).unwrap();
        queue.set_size(QUEUE_SIZE);
        queue.set_desc_table_address(Some(DESC_TABLE as u32), Some(0));
        queue.set_avail_ring_address(Some(AVAIL_RING as u32), Some(0));
        queue.set_used_ring_address(Some(USED_RING as u32), Some(0));
        queue.set_ready(true);
        queue.set_event_idx(event_idx);
        assert!(queue.is_valid(&self.mem));
        let mut accepted = common::VERSION_1 | self.block.device_features();
        if event_idx {
            accepted |= common::RING_EVENT_IDX;
        }
        if !flush {
            accepted &= !features::FLUSH;
        }
        let activation = Activation {
            mem: self.mem.clone(),
            queues: vec![queue],
            queue_events: vec![self.notify.try_clone().unwrap()],
            interrupt: Arc::clone(&self.interrupt),
            features: accepted,
        };
        self.block.activate(activation).unwrap();
    }

    /// The driver reset the device and set it up again from scratch.
    fn reset_and_activate(&mut self) {
        self.block.reset();
        self.mem
            .write_obj(0u16, GuestAddress(AVAIL_RING + 2))
            .unwrap();
        self.mem
            .write_obj(0u16, GuestAddress(USED_RING + 2))
            .unwrap();
        self.avail_idx = 0;
        self.activate(true, true);
    }

    fn write_desc(&self, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = DESC_TABLE + 16 * u64::from(index);
        self.mem.write_obj(addr, GuestAddress(at)).unwrap();
        self.mem.write_obj(len, GuestAddress(at + 8)).unwrap();
        self.mem.write_obj(flags, GuestAddress(at + 12)).unwrap();
        self.mem.write_obj(next, GuestAddress(at + 14)).unwrap();
    }

    /// Writes `bufs` as a linked chain into free descriptors; returns its head.
    fn chain(&mut self, bufs: &[Buf]) -> u16 {
        let head = self.next_desc;
        for (i, &(addr, len, write)) in bufs.iter().enumerate() {
            let index = (head + i as u16) % QUEUE_SIZE;
            let last = i + 1 == bufs.len();
            let flags = if write { F_WRITE } else { 0 } | if last { 0 } else { F_NEXT };
            self.write_desc(index, addr, len, flags, (index + 1) % QUEUE_SIZE);
        }
        self.next_desc = (head + bufs.len() as u16) % QUEUE_SIZE;
        head
    }

    /// Makes `head` available without notifying.
    fn make_available(&mut self, head: u16) {
        let slot = AVAIL_RING + 4 + 2 * u64::from(self.avail_idx % QUEUE_SIZE);
        self.mem.write_obj(head, GuestAddress(slot)).unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.mem
            .write_obj(self.avail_idx, GuestAddress(AVAIL_RING + 2))
            .unwrap();
    }

    fn kick(&self) {
        self.notify.write(1).unwrap();
    }

    /// Waits until the device has used every chain made available.
    fn wait_used(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let used: u16 = self.mem.read_obj(GuestAddress(USED_RING + 2)).unwrap();
            if used == self.avail_idx {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the device used {used} of {} chains",
                self.avail_idx
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The used element for the `n`th chain made available: (head, length written).
    fn used_elem(&self, n: u16) -> (u32, u32) {
        let at = USED_RING + 4 + 8 * u64::from(n % QUEUE_SIZE);
        (
            self.mem.read_obj(GuestAddress(at)).unwrap(),
            self.mem.read_obj(GuestAddress(at + 4)).unwrap(),
        )
    }

    /// Submits one chain, waits for it, and returns the used length.
    fn run_chain(&mut self, bufs: &[Buf]) -> u32 {
        let head = self.chain(bufs);
        self.submit(head)
    }

    fn submit(&mut self, head: u16) -> u32 {
        self.make_available(head);
        self.kick();
        self.wait_used();
        let (id, len) = self.used_elem(self.avail_idx.wrapping_sub(1));
        assert_eq!(id, u32::from(head), "the used element names another chain");
        len
    }

    fn header(&self, kind: u32, sector: u64) {
        let mut header = [0u8; 16];
        header[..4].copy_from_slice(&kind.to_le_bytes());
        header[8..].copy_from_slice(&sector.to_le_bytes());
        self.mem.write_slice(&header, GuestAddress(HEADER)).unwrap();
        // A status the device never writes stays visibly unset.
        self.mem.write_obj(0xffu8, GuestAddress(STATUS)).unwrap();
    }

    fn status(&self) -> u8 {
        self.mem.read_obj(GuestAddress(STATUS)).unwrap()
    }

    /// Header, then `bufs`, then the status byte; returns (status, used length).
    fn request(&mut self, kind: u32, sector: u64, bufs: &[Buf]) -> (u8, u32) {
        self.header(kind, sector);
        let mut chain = vec![readable(HEADER, 16)];
        chain.extend_from_slice(bufs);
        chain.push(writable(STATUS, 1));
        let len = self.run_chain(&chain);
        (self.status(), len)
    }

    fn read(&mut self, sector: u64, len: u32) -> (u8, u32, Vec<u8>) {
        self.mem
            .write_slice(&vec![0xee; len as usize], GuestAddress(DATA))
            .unwrap();
        let (status, used) = self.request(T_IN, sector, &[writable(DATA, len)]);
        let mut data = vec![0; len as usize];
        self.mem.read_slice(&mut data, GuestAddress(DATA)).unwrap();
        (status, used, data)
    }

    fn write(&mut self, sector: u64, data: &[u8]) -> (u8, u32) {
        self.mem.write_slice(data, GuestAddress(DATA)).unwrap();
        self.request(T_OUT, sector, &[readable(DATA, data.len() as u32)])
    }

    /// Reads `len` bytes at `sector` and insists it works.
    fn read_ok(&mut self, sector: u64, len: u32) -> Vec<u8> {
        let (status, used, data) = self.read(sector, len);
        assert_eq!(
            (status, used),
            (S_OK, len + 1),
            "read of {len} bytes at sector {sector}"
        );
        data
    }

    fn write_ok(&mut self, sector: u64, data: &[u8]) {
        assert_eq!(
            self.write(sector, data),
            (S_OK, 1),
            "write of {} bytes at sector {sector}",
            data.len()
        );
    }
}

/// Recognisable content: no two sectors alike, no sector uniform.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 512) as u8)
        .collect()
}

/// An image of `len` bytes of [`pattern`] in its own temporary directory.
fn image(len: usize) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    let content = pattern(len);
    std::fs::write(&path, &content).unwrap();
    (dir, path, content)
}

fn open(path: &Path, read_only: bool, snapshot: bool) -> Block {
    Block::open(path, read_only, snapshot).unwrap_or_else(|e| panic!("{e}"))
}

/// [`open`] right after the last conflicting user went away. Other tests in this process spawn
/// programs (mke2fs), and a child holds copies of all our fds, locks included, from its fork to
/// its exec; so the lock may outlive our `drop` for a moment.
fn open_after_drop(path: &Path, read_only: bool, snapshot: bool) -> Block {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Block::open(path, read_only, snapshot) {
            Err(BlockError::InUse { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            result => return result.unwrap_or_else(|e| panic!("{e}")),
        }
    }
}

/// `capacity` from the configuration space.
fn capacity(block: &Block) -> u64 {
    let mut bytes = [0; 8];
    block.read_config(0, &mut bytes);
    u64::from_le_bytes(bytes)
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Splits `[addr, addr + len)` into 1..=4 buffers at random byte boundaries.
fn split(random: &mut Random, addr: u64, len: u32, write: bool) -> Vec<Buf> {
    let mut cuts: Vec<u32> = (0..random.below(4))
        .map(|_| random.below(u64::from(len)) as u32)
        .collect();
    cuts.push(0);
    cuts.push(len);
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2)
        .map(|w| (addr + u64::from(w[0]), w[1] - w[0], write))
        .collect()
}

// ---- Identity and configuration space ----

#[test]
fn block_offers_its_features_and_config() {
    let (_dir, path, _) = image(1 << 20);
    let block = open(&path, false, false);
    assert_eq!(block.device_type(), device_type::BLOCK);
    assert_eq!(block.queue_max_sizes(), &[256]);
    assert_eq!(
        block.device_features(),
        features::FLUSH | features::BLK_SIZE | features::SEG_MAX
    );
    assert_eq!(capacity(&block), 2048);

    let read = |offset: u64, len: usize| {
        let mut data = vec![0xaa; len];
        block.read_config(offset, &mut data);
        data
    };
    assert_eq!(read(0, 8), 2048u64.to_le_bytes());
    assert_eq!(read(0, 4), 2048u32.to_le_bytes());
    assert_eq!(read(4, 4), [0; 4]);
    assert_eq!(read(1, 1), [8]); // 2048 = 0x800
    assert_eq!(read(8, 4), [0; 4]); // size_max: not offered
    assert_eq!(read(12, 4), 254u32.to_le_bytes());
    assert_eq!(read(16, 4), [0; 4]); // geometry: not offered
    assert_eq!(read(20, 4), 512u32.to_le_bytes());
    assert_eq!(read(21, 1), [2]);
    assert_eq!(read(22, 4), [0; 4]); // straddles the end of what we fill in
    assert_eq!(read(0x100, 4), [0; 4]);
    assert_eq!(read(u64::MAX, 8), [0; 8]);
    assert_eq!(read(u64::MAX - 2, 8), [0; 8]);
}

#[test]
fn block_read_only_and_snapshot_features() {
    let (_dir, path, _) = image(4096);
    assert_ne!(open(&path, true, false).device_features() & features::RO, 0);
    assert_eq!(open(&path, false, true).device_features() & features::RO, 0);
    assert_ne!(open(&path, true, true).device_features() & features::RO, 0);
}

#[test]
fn block_capacity_rounds_down_partial_sectors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.img");
    std::fs::write(&path, pattern(1000)).unwrap();
    let mut driver = Driver::new(open(&path, false, false));
    assert_eq!(capacity(&driver.block), 1);
    assert_eq!(driver.read_ok(0, 512), pattern(1000)[..512]);
    assert_eq!(driver.read(1, 512).0, S_IOERR);
    assert_eq!(driver.read(0, 1024).0, S_IOERR);
}

#[test]
fn block_empty_file_is_a_zero_sector_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.img");
    std::fs::write(&path, b"").unwrap();
    let mut driver = Driver::new(open(&path, false, true));
    assert_eq!(capacity(&driver.block), 0);
    assert_eq!(driver.read(0, 512).0, S_IOERR);
    assert_eq!(driver.write(0, &[1; 512]).0, S_IOERR);
    assert_eq!(driver.request(T_FLUSH, 0, &[]), (S_OK, 1));
}

// ---- Requests that work ----

#[test]
fn block_read_returns_file_content() {
    let (_dir, path, content) = image(64 << 10);
    let mut driver = Driver::new(open(&path, false, false));
    assert_eq!(driver.read_ok(3, 4096), content[3 * 512..3 * 512 + 4096]);
    assert_eq!(driver.read_ok(0, 512), content[..512]);
    assert_eq!(driver.read_ok(127, 512), content[127 * 512..]);
    // A read of nothing is fine too.
    assert_eq!(driver.read(5, 0).0, S_OK);
}

#[test]
fn block_write_changes_the_file_and_reads_back() {
    let (_dir, path, mut content) = image(64 << 10);
    let mut driver = Driver::new(open(&path, false, false));
    let data: Vec<u8> = (0..1024).map(|i| (i * 13 % 256) as u8).collect();
    driver.write_ok(5, &data);
    content[5 * 512..5 * 512 + 1024].copy_from_slice(&data);
    assert_eq!(driver.read_ok(4, 2048), content[4 * 512..8 * 512]);
    assert_eq!(driver.request(T_FLUSH, 0, &[]), (S_OK, 1));
    assert_eq!(std::fs::read(&path).unwrap(), content);
}

#[test]
fn block_write_through_when_flush_is_not_negotiated() {
    let (_dir, path, mut content) = image(8192);
    let mut driver = Driver::with_features(open(&path, false, false), false, false);
    driver.write_ok(2, &[0x5a; 512]);
    content[1024..1536].fill(0x5a);
    assert_eq!(std::fs::read(&path).unwrap(), content);
    // The interrupt fired (no EVENT_IDX: every used buffer interrupts).
    assert_ne!(driver.interrupt.status() & USED_BUFFER, 0);
}

#[test]
fn block_snapshot_writes_are_private() {
    let (_dir, path, content) = image(64 << 10);
    let mut driver = Driver::new(open(&path, false, true));
    let mut model = content.clone();
    // Inside one 4 KiB chunk (copy-up of the rest of the chunk), across chunks with partial
    // edges, and whole chunks.
    for (sector, sectors, byte) in [
        (1u64, 1usize, 0x11u8),
        (7, 3, 0x22),
        (16, 8, 0x33),
        (30, 20, 0x44),
        (2, 1, 0x55),
    ] {
        let data = vec![byte; sectors * 512];
        driver.write_ok(sector, &data);
        let at = sector as usize * 512;
        model[at..at + data.len()].copy_from_slice(&data);
    }
    assert_eq!(driver.read_ok(0, 64 << 10), model);
    assert_eq!(driver.request(T_FLUSH, 0, &[]), (S_OK, 1));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        content,
        "the base file changed"
    );
    // Another snapshot user of the same image sees the base, not our writes.
    let mut other = Driver::new(open(&path, false, true));
    assert_eq!(other.read_ok(0, 64 << 10), content);
}

/// Random reads and writes, split over random descriptors, against an in-memory model.
fn random_io(snapshot: bool) {
    const SECTORS: u64 = 600; // not a multiple of 8: the last overlay chunk is short
    let (_dir, path, content) = image(SECTORS as usize * 512);
    let mut driver = Driver::new(open(&path, false, snapshot));
    let mut model = content.clone();
    let mut random = Random(0x9e37_79b9_7f4a_7c15 ^ u64::from(snapshot));
    for round in 0..300 {
        let sector = random.below(SECTORS);
        let sectors = 1 + random.below(40.min(SECTORS - sector));
        let len = (sectors * 512) as u32;
        let at = sector as usize * 512..(sector * 512) as usize + len as usize;
        if random.below(2) == 0 {
            let data: Vec<u8> = (0..len).map(|_| random.next() as u8).collect();
            driver.mem.write_slice(&data, GuestAddress(DATA)).unwrap();
            let bufs = split(&mut random, DATA, len, false);
            assert_eq!(
                driver.request(T_OUT, sector, &bufs),
                (S_OK, 1),
                "round {round}"
            );
            model[at].copy_from_slice(&data);
        } else {
            let bufs = split(&mut random, DATA, len, true);
            assert_eq!(
                driver.request(T_IN, sector, &bufs),
                (S_OK, len + 1),
                "round {round}"
            );
            let mut data = vec![0; len as usize];
            driver
                .mem
                .read_slice(&mut data, GuestAddress(DATA))
                .unwrap();
            assert!(
                data == model[at],
                "round {round}: read of {sectors} sectors at {sector} differs"
            );
        }
    }
    assert_eq!(driver.read_ok(0, (SECTORS * 512) as u32), model);
    let file = std::fs::read(&path).unwrap();
    assert!(
        file == if snapshot { content } else { model },
        "file content after the run"
    );
}

#[test]
fn block_random_io_read_write() {
    random_io(false);
}

#[test]
fn block_random_io_snapshot() {
    random_io(true);
}

#[test]
fn block_large_requests_go_straight_to_and_from_guest_memory() {
    // Megabytes in one request, over many snapshot-overlay chunks.
    let len = (2 << 20) + 4096;
    for snapshot in [false, true] {
        let (_dir, path, _) = image(len + 8192);
        let mut driver = Driver::new(open(&path, false, snapshot));
        let data: Vec<u8> = (0..len).map(|i| (i * 7 / 512) as u8).collect();
        driver.write_ok(3, &data);
        assert!(driver.read_ok(3, len as u32) == data);
    }
}

#[test]
fn block_header_split_over_descriptors() {
    let (_dir, path, content) = image(8192);
    let mut driver = Driver::new(open(&path, false, false));
    driver.header(T_IN, 2);
    let bufs = [
        readable(HEADER, 5),
        readable(HEADER + 5, 11),
        writable(DATA, 512),
        writable(STATUS, 1),
    ];
    assert_eq!(driver.run_chain(&bufs), 513);
    assert_eq!(driver.status(), S_OK);
    let mut data = vec![0; 512];
    driver
        .mem
        .read_slice(&mut data, GuestAddress(DATA))
        .unwrap();
    assert_eq!(data, content[1024..1536]);
}

#[test]
fn block_flush_and_get_id() {
    let (_dir, path, _) = image(8192);
    let mut driver = Driver::new(open(&path, false, false));
    assert_eq!(driver.request(T_FLUSH, 0, &[]), (S_OK, 1));

    let id = |driver: &mut Driver, len: u32| {
        driver
            .mem
            .write_slice(&[0xee; 32], GuestAddress(DATA))
            .unwrap();
        let (status, used) = driver.request(T_GET_ID, 0, &[writable(DATA, len)]);
        let mut data = vec![0; 32];
        driver
            .mem
            .read_slice(&mut data, GuestAddress(DATA))
            .unwrap();
        (status, used, data)
    };
    let (status, used, data) = id(&mut driver, 20);
    assert_eq!((status, used), (S_OK, 21));
    assert_eq!(&data[..20], b"noa-vda\0\0\0\0\0\0\0\0\0\0\0\0\0");
    assert_eq!(data[20], 0xee, "wrote past the buffer");
    // A short buffer gets what fits.
    let (status, used, data) = id(&mut driver, 4);
    assert_eq!((status, used), (S_OK, 5));
    assert_eq!(&data[..5], b"noa-\xee");

    drop(driver);
    let mut driver = Driver::new(
        open_after_drop(&path, true, false).with_serial("a-serial-of-more-than-20-bytes"),
    );
    let (status, used, data) = id(&mut driver, 20);
    assert_eq!((status, used), (S_OK, 21));
    assert_eq!(&data[..20], b"a-serial-of-more-tha");
}

#[test]
fn block_serves_a_batch_of_chains() {
    let (_dir, path, content) = image(16384);
    let mut driver = Driver::new(open(&path, true, false));
    driver.header(T_IN, 1);
    let heads: Vec<u16> = (0..3)
        .map(|i| {
            let data = DATA + 0x1000 * i;
            let status = STATUS + 1 + i;
            driver.chain(&[
                readable(HEADER, 16),
                writable(data, 512),
                writable(status, 1),
            ])
        })
        .collect();
    for &head in &heads {
        driver.make_available(head);
    }
    driver.kick();
    driver.wait_used();
    for (i, &head) in heads.iter().enumerate() {
        assert_eq!(driver.used_elem(i as u16), (u32::from(head), 513));
        let status: u8 = driver
            .mem
            .read_obj(GuestAddress(STATUS + 1 + i as u64))
            .unwrap();
        assert_eq!(status, S_OK);
        let mut data = vec![0; 512];
        driver
            .mem
            .read_slice(&mut data, GuestAddress(DATA + 0x1000 * i as u64))
            .unwrap();
        assert_eq!(data, content[512..1024]);
    }
}

#[test]
fn block_works_after_reset() {
    let (_dir, path, content) = image(8192);
    let mut driver = Driver::new(open(&path, false, false));
    driver.write_ok(0, &[9; 512]);
    driver.reset_and_activate();
    assert_eq!(
        driver.read_ok(0, 1024)[..],
        [&[9; 512][..], &content[512..1024]].concat()
    );
}

// ---- Requests the device refuses ----

#[test]
fn block_out_of_range_is_ioerr() {
    let (_dir, path, content) = image(64 << 10); // 128 sectors
    let mut driver = Driver::new(open(&path, false, false));
    assert_eq!(driver.read(128, 512).0, S_IOERR);
    assert_eq!(driver.read(127, 1024).0, S_IOERR);
    assert_eq!(driver.read(u64::MAX, 512).0, S_IOERR);
    assert_eq!(driver.read(u64::MAX / 512, 512).0, S_IOERR); // sector × 512 + len overflows
    assert_eq!(driver.read(u64::MAX / 512 + 1, 512).0, S_IOERR); // sector × 512 overflows
    assert_eq!(driver.read(128, 0).0, S_OK); // nothing, right at the end
    assert_eq!(driver.read(129, 0).0, S_IOERR);
    assert_eq!(driver.write(127, &[1; 1024]), (S_IOERR, 1));
    assert_eq!(driver.write(u64::MAX, &[1; 512]), (S_IOERR, 1));
    // The guest's buffer was not filled and the file is unchanged.
    let (status, used, data) = driver.read(200, 512);
    assert_eq!((status, used), (S_IOERR, 1));
    assert_eq!(data, [0xee; 512]);
    assert_eq!(std::fs::read(&path).unwrap(), content);
    assert_eq!(driver.read_ok(127, 512), content[127 * 512..]);
}

#[test]
fn block_write_to_read_only_disk_is_ioerr() {
    let (_dir, path, content) = image(8192);
    let mut driver = Driver::new(open(&path, true, false));
    assert_eq!(driver.write(0, &[7; 512]), (S_IOERR, 1));
    assert_eq!(driver.read_ok(0, 512), content[..512]);
    assert_eq!(driver.request(T_FLUSH, 0, &[]), (S_OK, 1));
    assert_eq!(std::fs::read(&path).unwrap(), content);
    // Read-only with --snapshot is still read-only.
    let mut driver = Driver::new(open(&path, true, true));
    assert_eq!(driver.write(0, &[7; 512]), (S_IOERR, 1));
}

#[test]
fn block_unsupported_types_are_unsupp() {
    let (_dir, path, _) = image(8192);
    let mut driver = Driver::new(open(&path, false, false));
    for kind in [2, 3, 10, 11, 13, 14, 0xdead_beef] {
        assert_eq!(driver.request(kind, 0, &[]), (S_UNSUPP, 1), "type {kind}");
    }
    // Discard with its payload: still UNSUPP, and nothing written but the status.
    driver
        .mem
        .write_slice(&[0; 16], GuestAddress(DATA))
        .unwrap();
    assert_eq!(driver.request(11, 0, &[readable(DATA, 16)]), (S_UNSUPP, 1));
}

#[test]
fn block_odd_lengths_are_ioerr() {
    let (_dir, path, content) = image(8192);
    let mut driver = Driver::new(open(&path, false, false));
    assert_eq!(driver.read(0, 513).0, S_IOERR);
    assert_eq!(driver.read(0, 100).0, S_IOERR);
    assert_eq!(driver.write(0, &[3; 100]), (S_IOERR, 1));
    assert_eq!(driver.write(0, &[3; 1023]), (S_IOERR, 1));
    // A short header.
    driver.header(T_IN, 0);
    assert_eq!(
        driver.run_chain(&[
            readable(HEADER, 8),
            writable(DATA, 512),
            writable(STATUS, 1)
        ]),
        1
    );
    assert_eq!(driver.status(), S_IOERR);
    assert_eq!(std::fs::read(&path).unwrap(), content);
}

#[test]
fn block_wrong_direction_is_ioerr() {
    let (_dir, path, content) = image(8192);
    let mut driver = Driver::new(open(&path, false, false));
    // A read whose data buffer the device may only read.
    assert_eq!(
        driver.request(T_IN, 0, &[readable(DATA, 512)]),
        (S_IOERR, 1)
    );
    // A write whose data buffer the device may only write.
    assert_eq!(
        driver.request(T_OUT, 0, &[writable(DATA, 512)]),
        (S_IOERR, 1)
    );
    // A status the device may only read: no status byte at all, so the chain is returned unused.
    driver.header(T_FLUSH, 0);
    assert_eq!(
        driver.run_chain(&[readable(HEADER, 16), readable(STATUS, 1)]),
        0
    );
    assert_eq!(driver.status(), 0xff);
    // A readable descriptor after a writable one.
    driver.header(T_OUT, 0);
    assert_eq!(
        driver.run_chain(&[
            readable(HEADER, 16),
            writable(DATA, 512),
            readable(DATA, 512),
            writable(STATUS, 1)
        ]),
        0
    );
    assert_eq!(driver.status(), 0xff);
    assert_eq!(std::fs::read(&path).unwrap(), content);
    assert_eq!(driver.read_ok(0, 512), content[..512]);
}

#[test]
fn block_missing_status_is_dropped_or_taken_from_the_last_byte() {
    let (_dir, path, content) = image(8192);
    let mut driver = Driver::new(open(&path, false, false));
    // Only a header: nothing the device may write, so the chain comes back with 0 bytes.
    driver.header(T_IN, 0);
    assert_eq!(driver.run_chain(&[readable(HEADER, 16)]), 0);
    // A zero-length status descriptor.
    assert_eq!(
        driver.run_chain(&[
            readable(HEADER, 16),
            writable(DATA, 512),
            writable(STATUS, 0)
        ]),
        0
    );
    assert_eq!(driver.status(), 0xff);
    // Header and a 512-byte writable buffer: its last byte is the status, so 511 data bytes,
    // which is not whole sectors.
    driver
        .mem
        .write_slice(&[0xee; 512], GuestAddress(DATA))
        .unwrap();
    assert_eq!(
        driver.run_chain(&[readable(HEADER, 16), writable(DATA, 512)]),
        1
    );
    let status: u8 = driver.mem.read_obj(GuestAddress(DATA + 511)).unwrap();
    assert_eq!(status, S_IOERR);
    // The device still works.
    assert_eq!(driver.read_ok(0, 512), content[..512]);
}

#[test]
fn block_buffers_outside_guest_memory() {
    let (_dir, path, content) = image(8192);
    let mut driver = Driver::new(open(&path, false, false));
    // Data outside memory, partly outside, at the top of the address space, huge.
    for data in [
        writable(OUTSIDE, 512),
        writable(MEM_BYTES - 512, 1024),
        writable(u64::MAX - 255, 512),
        writable(DATA, u32::MAX - 511),
    ] {
        assert_eq!(driver.request(T_IN, 0, &[data]), (S_IOERR, 1), "{data:x?}");
    }
    assert_eq!(
        driver.request(T_OUT, 0, &[readable(OUTSIDE, 512)]),
        (S_IOERR, 1)
    );
    assert_eq!(
        driver.request(T_GET_ID, 0, &[writable(OUTSIDE, 20)]),
        (S_IOERR, 1)
    );
    // The header outside memory.
    driver.mem.write_obj(0xffu8, GuestAddress(STATUS)).unwrap();
    assert_eq!(
        driver.run_chain(&[readable(OUTSIDE, 16), writable(STATUS, 1)]),
        1
    );
    assert_eq!(driver.status(), S_IOERR);
    // The status outside memory: nowhere to report, so the chain is returned unused.
    driver.header(T_IN, 0);
    assert_eq!(
        driver.run_chain(&[
            readable(HEADER, 16),
            writable(DATA, 512),
            writable(OUTSIDE, 1)
        ]),
        0
    );
    assert_eq!(
        driver.run_chain(&[readable(HEADER, 16), writable(u64::MAX, 1)]),
        0
    );
    assert_eq!(std::fs::read(&path).unwrap(), content);
    assert_eq!(driver.read_ok(0, 512), content[..512]);
}

#[test]
fn block_broken_chains_are_returned_unused() {
    let (_dir, path, content) = image(8192);
    let mut driver = Driver::new(open(&path, false, false));
    driver.header(T_IN, 0);
    // A loop: header → data → header → …
    driver.write_desc(10, HEADER, 16, F_NEXT, 11);
    driver.write_desc(11, DATA, 512, F_WRITE | F_NEXT, 10);
    assert_eq!(driver.submit(10), 0);
    // A descriptor that points at itself.
    driver.write_desc(12, STATUS, 1, F_WRITE | F_NEXT, 12);
    assert_eq!(driver.submit(12), 0);
    // A next index outside the table.
    driver.write_desc(13, HEADER, 16, F_NEXT, 300);
    assert_eq!(driver.submit(13), 0);
    driver.write_desc(14, HEADER, 16, F_NEXT, 15);
    driver.write_desc(15, STATUS, 1, F_WRITE | F_NEXT, u16::MAX);
    assert_eq!(driver.submit(14), 0);
    assert_eq!(driver.status(), 0xff);
    // Then a good request on the same queue.
    driver.next_desc = 20;
    assert_eq!(driver.read_ok(1, 512), content[512..1024]);
}

// ---- Opening and locking ----

#[test]
fn block_snapshot_overlay_files_have_no_name() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    for file in [
        super::disk::create_unlinked(dir.path()),
        super::disk::create_then_unlink(dir.path()),
    ] {
        let file = file.unwrap();
        assert_eq!(file.metadata().unwrap().nlink(), 0);
        assert_eq!(file.metadata().unwrap().mode() & 0o777, 0o600);
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "an overlay left a name behind"
    );
}

#[test]
fn block_open_read_write_twice_fails_with_in_use() {
    let (_dir, path, _) = image(4096);
    let first = open(&path, false, false);
    let err = Block::open(&path, false, false)
        .err()
        .expect("a second read-write open succeeded");
    assert!(matches!(err, BlockError::InUse { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: is in use by another process (locked read-write); a disk has one read-write user at a time",
            path.display()
        )
    );
    // Neither a snapshot nor a read-only user may join a read-write one.
    for (read_only, snapshot) in [(false, true), (true, false), (true, true)] {
        let err = Block::open(&path, read_only, snapshot)
            .err()
            .expect("opened while locked read-write");
        assert!(
            err.to_string()
                .contains("is in use by another process (locked read-write)"),
            "{err}"
        );
    }
    // The lock goes with the device.
    drop(first);
    drop(open_after_drop(&path, false, false));
}

#[test]
fn block_snapshots_and_read_only_users_share() {
    let (_dir, path, _) = image(4096);
    let users = [
        open(&path, false, true),
        open(&path, false, true),
        open(&path, true, false),
        open(&path, true, true),
    ];
    let err = Block::open(&path, false, false)
        .err()
        .expect("read-write open next to snapshot users");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: is in use by another process (attached read-only or with --snapshot); use --snapshot for a private copy, or :ro",
            path.display()
        )
    );
    drop(users);
    drop(open_after_drop(&path, false, false));
}

#[test]
fn block_open_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guest.img");
    for (read_only, snapshot) in [(false, false), (true, false), (false, true)] {
        let err = Block::open(&path, read_only, snapshot)
            .err()
            .expect("opened a missing file");
        assert_eq!(
            err.to_string(),
            format!("{}: cannot open: No such file or directory", path.display())
        );
    }
}

#[test]
fn block_open_directory() {
    let dir = tempfile::tempdir().unwrap();
    for (read_only, snapshot) in [(false, false), (true, false), (false, true)] {
        let err = Block::open(dir.path(), read_only, snapshot)
            .err()
            .expect("opened a directory");
        assert!(matches!(err, BlockError::NotADisk { .. }), "{err:?}");
        assert!(err.to_string().starts_with(&format!(
            "{}: not a disk image (a directory)",
            dir.path().display()
        )));
    }
}

#[test]
fn block_open_unwritable_file() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path, content) = image(4096);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    // Read-only and snapshot users do not need write permission.
    let mut driver = Driver::new(open(&path, false, true));
    driver.write_ok(0, &[1; 512]);
    drop(open(&path, true, false));

    // Root ignores file modes; sysfs refuses write opens of 0444 files even to root.
    let unwritable = if std::fs::OpenOptions::new().write(true).open(&path).is_err() {
        path.clone()
    } else {
        PathBuf::from("/sys/kernel/uevent_seqnum")
    };
    if std::fs::OpenOptions::new()
        .write(true)
        .open(&unwritable)
        .is_ok()
    {
        println!(
            "SKIPPED: running as root and {} is writable",
            unwritable.display()
        );
        return;
    }
    let err = Block::open(&unwritable, false, false)
        .err()
        .expect("opened an unwritable file read-write");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: not writable (Permission denied); add :ro to attach it read-only, or use --snapshot for a private copy",
            unwritable.display()
        )
    );
    assert_eq!(std::fs::read(&path).unwrap(), content);
}

// ---- Through the virtio-mmio transport ----

/// The whole path a guest driver takes: registers, feature negotiation, queue set-up,
/// DRIVER_OK, a notification, the configuration space.
#[test]
fn block_through_the_mmio_transport() {
    use super::super::mmio::MmioTransport;
    let (_dir, path, content) = image(64 << 10);
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM_BYTES as usize)]).unwrap();
    let interrupt = Arc::new(Interrupt::new(EventFd::new(libc::EFD_NONBLOCK).unwrap()));
    let device = Box::new(open(&path, true, false));
    let mut transport = MmioTransport::new(
        device,
        "virtio-blk@test".into(),
        mem.clone(),
        Arc::clone(&interrupt),
    )
    .unwrap();
    let read = |transport: &mut MmioTransport, offset: u64| {
        let mut bytes = [0; 4];
        transport.read(offset, &mut bytes);
        u32::from_le_bytes(bytes)
    };
    let write = |transport: &mut MmioTransport, offset: u64, value: u32| {
        transport.write(offset, &value.to_le_bytes())
    };
    assert_eq!(read(&mut transport, 0x008), device_type::BLOCK);
    write(&mut transport, 0x070, 1 | 2); // ACKNOWLEDGE | DRIVER
    write(&mut transport, 0x014, 0);
    let offered_low = read(&mut transport, 0x010);
    let wanted = features::FLUSH | features::BLK_SIZE | features::SEG_MAX | features::RO;
    assert_eq!(u64::from(offered_low) & wanted, wanted);
    write(&mut transport, 0x024, 0);
    write(&mut transport, 0x020, offered_low);
    write(&mut transport, 0x024, 1);
    write(&mut transport, 0x020, (common::VERSION_1 >> 32) as u32);
    write(&mut transport, 0x070, 1 | 2 | 8); // FEATURES_OK
    assert_eq!(
        read(&mut transport, 0x070) & 8,
        8,
        "the transport refused the features"
    );
    write(&mut transport, 0x030, 0);
    assert_eq!(read(&mut transport, 0x034), 256);
    write(&mut transport, 0x038, u32::from(QUEUE_SIZE));
    write(&mut transport, 0x080, DESC_TABLE as u32);
    write(&mut transport, 0x090, AVAIL_RING as u32);
    write(&mut transport, 0x0a0, USED_RING as u32);
    write(&mut transport, 0x044, 1);
    write(&mut transport, 0x070, 1 | 2 | 8 | 4); // DRIVER_OK
    assert_eq!(read(&mut transport, 0x070), 1 | 2 | 8 | 4);
    // capacity, 32 bits at a time as Linux reads it.
    assert_eq!(read(&mut transport, 0x100), 128);
    assert_eq!(read(&mut transport, 0x104), 0);

    // One read request: header, data, status as descriptors 0, 1, 2.
    let mut header = [0u8; 16];
    header[..4].copy_from_slice(&T_IN.to_le_bytes());
    header[8..].copy_from_slice(&7u64.to_le_bytes());
    mem.write_slice(&header, GuestAddress(HEADER)).unwrap();
    for (index, (addr, len, flags)) in [
        (HEADER, 16u32, F_NEXT),
        (DATA, 1024, F_WRITE | F_NEXT),
        (STATUS, 1, F_WRITE),
    ]
    .into_iter()
    .enumerate()
    {
        let at = DESC_TABLE + 16 * index as u64;
        mem.write_obj(addr, GuestAddress(at)).unwrap();
        mem.write_obj(len, GuestAddress(at + 8)).unwrap();
        mem.write_obj(flags, GuestAddress(at + 12)).unwrap();
        mem.write_obj(index as u16 + 1, GuestAddress(at + 14))
            .unwrap();
    }
    mem.write_obj(0u16, GuestAddress(AVAIL_RING + 4)).unwrap();
    mem.write_obj(1u16, GuestAddress(AVAIL_RING + 2)).unwrap();
    // As KVM's ioeventfd would on a write of 0 to QueueNotify.
    transport.queue_events()[0].write(1).unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    while mem.read_obj::<u16>(GuestAddress(USED_RING + 2)).unwrap() != 1 {
        assert!(Instant::now() < deadline, "the request was not served");
        std::thread::sleep(Duration::from_millis(1));
    }
    let used_len: u32 = mem.read_obj(GuestAddress(USED_RING + 8)).unwrap();
    assert_eq!(used_len, 1025);
    assert_eq!(mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(), S_OK);
    let mut data = vec![0; 1024];
    mem.read_slice(&mut data, GuestAddress(DATA)).unwrap();
    assert_eq!(data, content[7 * 512..9 * 512]);
    assert_ne!(read(&mut transport, 0x060) & USED_BUFFER, 0);
    // A reset stops the I/O thread; the lock goes when the transport does.
    write(&mut transport, 0x070, 0);
    drop(transport);
    drop(open_after_drop(&path, false, false));
}
