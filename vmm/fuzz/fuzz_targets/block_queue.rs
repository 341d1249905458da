//! virtio-blk's queue processing: a fuzzer-built split virtqueue and request headers in a 64 KiB
//! guest memory, served once by the device's I/O thread (`queue::serve`, request parsing and
//! checking, reads, writes, flushes and GET_ID against a scratch disk of up to 16 KiB) —
//! read-write, read-only or `--snapshot`, with or without FLUSH negotiated.
//!
//! Besides "no crash", the disk file must keep its size, and a read-only or snapshot disk's file
//! must keep its bytes.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vm_memory::{Bytes, GuestAddress};
use vmm::devices::virtio::block::{Block, features as blk};
use vmm::devices::virtio::{VirtioDevice, features};
use vmm_fuzz::{MAX_DISK_BYTES, Ring, ScratchDisk, guest_memory, queue, run_device};

/// A request header (`struct virtio_blk_req` up to the data) the driver puts somewhere.
#[derive(Arbitrary, Debug)]
struct Header {
    addr: u16,
    /// 0..=3: IN, OUT, FLUSH, GET_ID; otherwise the value itself (unknown types).
    kind: u32,
    reserved: u32,
    /// Top bit clear: a sector near the disk (`% 64`); set: anything.
    sector: u64,
}

#[derive(Arbitrary, Debug)]
struct Input {
    disk_bytes: u16,
    read_only: bool,
    snapshot: bool,
    /// The driver negotiated FLUSH (else every write is write-through).
    flush: bool,
    serial: String,
    headers: Vec<Header>,
    ring: Ring,
}

const KINDS: [u32; 4] = [0, 1, 4, 8];

fuzz_target!(|input: Input| {
    let mem = guest_memory(input.ring.two_regions);
    let disk = ScratchDisk::get();
    let disk_bytes = usize::from(input.disk_bytes) % (MAX_DISK_BYTES + 1);
    disk.reset(disk_bytes);
    let Ok(block) = Block::open(disk.path(), input.read_only, input.snapshot) else {
        return;
    };
    let mut block = block.with_serial(&input.serial);

    for header in input.headers.iter().take(16) {
        let kind = KINDS
            .get(header.kind as usize)
            .copied()
            .unwrap_or(header.kind);
        let sector = if header.sector >> 63 == 0 {
            header.sector % 64
        } else {
            header.sector
        };
        let mut raw = [0u8; 16];
        raw[0..4].copy_from_slice(&kind.to_le_bytes());
        raw[4..8].copy_from_slice(&header.reserved.to_le_bytes());
        raw[8..16].copy_from_slice(&sector.to_le_bytes());
        let _ = mem.write(&raw, GuestAddress(u64::from(header.addr)));
    }
    let max = block.queue_max_sizes()[0];
    let Some(queue) = queue(&mem, &input.ring, max) else {
        return;
    };

    let offered = block.device_features() | features::COMMON;
    let mut negotiated = features::VERSION_1 | blk::SEG_MAX | blk::BLK_SIZE | blk::RO;
    if input.ring.event_idx {
        negotiated |= features::RING_EVENT_IDX;
    }
    if input.flush {
        negotiated |= blk::FLUSH;
    }
    run_device(&mut block, &mem, vec![queue], negotiated & offered);
    drop(block);
    disk.check(disk_bytes, input.read_only || input.snapshot);
});
