//! The virtio-mmio transport: a bounded sequence of driver accesses to a device's 4 KiB register
//! window — reads and writes of any offset and width, raw or as the usual steps of a driver
//! (status handshake with feature negotiation, queue setup at fuzzer-chosen ring addresses,
//! DRIVER_OK, notifications) — interleaved with guest memory writes, against a real virtio-rng,
//! virtio-blk (scratch disk) or virtio-console (output discarded, no input) in a 64 KiB guest
//! memory. (virtio-net and virtio-vsock are left out: their host sides are sockets or a tap;
//! `net_queue` and `vsock_queue` cover their queues.)
//!
//! Once DRIVER_OK activates the device, its I/O thread serves notified queues concurrently with
//! the rest of the sequence, as with a real guest. The sequence ends with a reset (status 0),
//! which stops and joins that thread, so nothing outlives the input.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use vmm::devices::virtio::block::Block;
use vmm::devices::virtio::console::Console;
use vmm::devices::virtio::mmio::{MmioTransport, QUEUE_NOTIFY_OFFSET, WINDOW_BYTES};
use vmm::devices::virtio::rng::Rng;
use vmm::devices::virtio::{Interrupt, VirtioDevice};
use vmm_fuzz::{MAX_DISK_BYTES, Patch, ScratchDisk, address, apply, guest_memory};
use vmm_sys_util::eventfd::EventFd;

// The register offsets the driver-step operations use (virtio 1.2 §4.2.2).
const DEVICE_FEATURES: u64 = 0x010;
const DEVICE_FEATURES_SEL: u64 = 0x014;
const DRIVER_FEATURES: u64 = 0x020;
const DRIVER_FEATURES_SEL: u64 = 0x024;
const QUEUE_SEL: u64 = 0x030;
const QUEUE_NUM: u64 = 0x038;
const QUEUE_READY: u64 = 0x044;
const STATUS: u64 = 0x070;
const QUEUE_DESC_LOW: u64 = 0x080;

const ACKNOWLEDGE: u32 = 1;
const DRIVER: u32 = 2;
const FEATURES_OK: u32 = 8;

/// Most operations per input.
const MAX_OPS: usize = 64;

#[derive(Arbitrary, Debug)]
enum Device {
    Rng,
    Console,
    Block {
        disk_bytes: u16,
        read_only: bool,
        snapshot: bool,
    },
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// A read of 1 to 8 bytes anywhere in the window.
    Read { offset: u16, width: u8 },
    /// A write of the low 1 to 8 bytes of `value` anywhere in the window.
    Write { offset: u16, width: u8, value: u64 },
    /// The driver writes guest memory (rings, descriptors, buffers).
    Memory(Patch),
    /// ACKNOWLEDGE, DRIVER, the offered features masked (plus one extra bit if `extra` is not
    /// 0), FEATURES_OK.
    Handshake { mask: u64, extra: u8 },
    /// Selects a queue and writes its size, ring addresses and QueueReady = 1.
    SetupQueue {
        index: u8,
        size: u16,
        desc: u32,
        avail: u32,
        used: u32,
    },
    /// Writes the status register (0 resets; 0xf is the usual DRIVER_OK).
    Status(u8),
    /// Writes QueueNotify (the path taken when no ioeventfd catches it).
    Notify(u16),
}

#[derive(Arbitrary, Debug)]
struct Input {
    device: Device,
    two_regions: bool,
    memory: Vec<Patch>,
    ops: Vec<Op>,
}

fn write32(transport: &mut MmioTransport, offset: u64, value: u32) {
    transport.write(offset, &value.to_le_bytes());
}

fn read32(transport: &mut MmioTransport, offset: u64) -> u32 {
    let mut bytes = [0u8; 4];
    transport.read(offset, &mut bytes);
    u32::from_le_bytes(bytes)
}

fn offered_features(transport: &mut MmioTransport) -> u64 {
    write32(transport, DEVICE_FEATURES_SEL, 1);
    let high = read32(transport, DEVICE_FEATURES);
    write32(transport, DEVICE_FEATURES_SEL, 0);
    let low = read32(transport, DEVICE_FEATURES);
    u64::from(high) << 32 | u64::from(low)
}

fn run(transport: &mut MmioTransport, op: &Op, mem: &vm_memory::GuestMemoryMmap) {
    match *op {
        Op::Read { offset, width } => {
            let mut data = [0u8; 8];
            let width = usize::from(width % 8) + 1;
            transport.read(u64::from(offset) % WINDOW_BYTES, &mut data[..width]);
        }
        Op::Write {
            offset,
            width,
            value,
        } => {
            let width = usize::from(width % 8) + 1;
            transport.write(
                u64::from(offset) % WINDOW_BYTES,
                &value.to_le_bytes()[..width],
            );
        }
        Op::Memory(ref patch) => apply(mem, std::slice::from_ref(patch)),
        Op::Handshake { mask, extra } => {
            write32(transport, STATUS, ACKNOWLEDGE);
            write32(transport, STATUS, ACKNOWLEDGE | DRIVER);
            let mut features = offered_features(transport) & mask;
            if extra != 0 {
                features |= 1 << (extra % 64);
            }
            write32(transport, DRIVER_FEATURES_SEL, 0);
            write32(transport, DRIVER_FEATURES, features as u32);
            write32(transport, DRIVER_FEATURES_SEL, 1);
            write32(transport, DRIVER_FEATURES, (features >> 32) as u32);
            write32(transport, STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
        }
        Op::SetupQueue {
            index,
            size,
            desc,
            avail,
            used,
        } => {
            write32(transport, QUEUE_SEL, u32::from(index % 4));
            write32(transport, QUEUE_NUM, u32::from(size));
            for (i, raw) in [desc, avail, used].into_iter().enumerate() {
                let addr = address(raw);
                let low = QUEUE_DESC_LOW + 0x10 * i as u64;
                write32(transport, low, addr as u32);
                write32(transport, low + 4, (addr >> 32) as u32);
            }
            write32(transport, QUEUE_READY, 1);
        }
        Op::Status(value) => write32(transport, STATUS, u32::from(value)),
        Op::Notify(queue) => write32(transport, QUEUE_NOTIFY_OFFSET, u32::from(queue % 4)),
    }
}

fuzz_target!(|input: Input| {
    let mem = guest_memory(input.two_regions);
    apply(&mem, &input.memory);
    let (device, checked_disk): (Box<dyn VirtioDevice>, _) = match input.device {
        Device::Rng => (Box::new(Rng::new()), None),
        Device::Console => (
            Box::new(Console::new(Box::new(std::io::sink()), None)),
            None,
        ),
        Device::Block {
            disk_bytes,
            read_only,
            snapshot,
        } => {
            let disk = ScratchDisk::get();
            let bytes = usize::from(disk_bytes) % (MAX_DISK_BYTES + 1);
            disk.reset(bytes);
            let Ok(block) = Block::open(disk.path(), read_only, snapshot) else {
                return;
            };
            (Box::new(block), Some((disk, bytes, read_only || snapshot)))
        }
    };
    let irqfd = EventFd::new(libc::EFD_NONBLOCK).expect("eventfd");
    let interrupt = Arc::new(Interrupt::new(irqfd));
    let Ok(mut transport) = MmioTransport::new(device, "fuzz".into(), mem.clone(), interrupt)
    else {
        return;
    };
    for op in input.ops.iter().take(MAX_OPS) {
        run(&mut transport, op, &mem);
    }
    // Reset: the device stops and joins its I/O thread.
    write32(&mut transport, STATUS, 0);
    drop(transport);
    if let Some((disk, bytes, untouched)) = checked_disk {
        disk.check(bytes, untouched);
    }
});
