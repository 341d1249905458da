//! The driver half of a virtio-net device, for tests: split virtqueues laid out in a real
//! `GuestMemoryMmap` per virtio 1.2 §2.7 (descriptor table, available ring, used ring), written
//! and read the way a guest driver does, with queue notifications through the same eventfds KVM
//! would signal. The device under test is activated through [`VirtioDevice::activate`] and runs on
//! its own I/O thread, exactly as in the VMM.

use crate::devices::virtio::net::frame::{HEADER_LEN, MAX_FRAME};
use crate::devices::virtio::{Activation, Interrupt, Queue, VirtioDevice, features};
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};
use virtio_queue::QueueT;
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

pub const QUEUE_SIZE: u16 = 256;
/// Each descriptor's buffer (the spec asks for at least 1526 bytes for receive buffers).
/// Each buffer holds the largest frame the device may carry (the user network's MTU) and more.
pub const BUFFER_LEN: u32 = 16 * 1024 + 1024;
const MEM_BYTES: usize = 16 << 20;
const DESC_F_WRITE: u16 = 2;

/// One split virtqueue as the driver sees it.
struct Ring {
    desc: GuestAddress,
    avail: GuestAddress,
    used: GuestAddress,
    buffers: GuestAddress,
    /// The driver's next available index and the used index it has consumed up to.
    avail_idx: u16,
    used_seen: u16,
    /// Descriptors not currently given to the device.
    free: Vec<u16>,
}

impl Ring {
    fn new(base: u64) -> Ring {
        Ring {
            desc: GuestAddress(base),
            avail: GuestAddress(base + 0x1000),
            used: GuestAddress(base + 0x2000),
            buffers: GuestAddress(base + 0x10000),
            avail_idx: 0,
            used_seen: 0,
            free: (0..QUEUE_SIZE).rev().collect(),
        }
    }

    fn buffer(&self, id: u16) -> GuestAddress {
        self.buffers
            .unchecked_add(u64::from(id) * u64::from(BUFFER_LEN))
    }

    /// The device-side `Queue`, set up as the MMIO transport would after the driver's writes.
    fn queue(&self, mem: &GuestMemoryMmap, event_idx: bool) -> Queue {
        let mut queue = Queue::new(QUEUE_SIZE).unwrap();
        queue.set_size(QUEUE_SIZE);
        let split = |a: GuestAddress| (Some(a.0 as u32), Some((a.0 >> 32) as u32));
        let (lo, hi) = split(self.desc);
        queue.set_desc_table_address(lo, hi);
        let (lo, hi) = split(self.avail);
        queue.set_avail_ring_address(lo, hi);
        let (lo, hi) = split(self.used);
        queue.set_used_ring_address(lo, hi);
        queue.set_event_idx(event_idx);
        queue.set_ready(true);
        assert!(queue.is_valid(mem));
        queue
    }

    /// Makes descriptor `id` (`len` bytes of its buffer, `flags`) available.
    fn offer(&mut self, mem: &GuestMemoryMmap, id: u16, len: u32, flags: u16) {
        let desc = self.desc.unchecked_add(16 * u64::from(id));
        mem.write_obj(self.buffer(id).0, desc).unwrap();
        mem.write_obj(len, desc.unchecked_add(8)).unwrap();
        mem.write_obj(flags, desc.unchecked_add(12)).unwrap();
        mem.write_obj(0u16, desc.unchecked_add(14)).unwrap();
        let slot = u64::from(self.avail_idx % QUEUE_SIZE);
        mem.write_obj(id, self.avail.unchecked_add(4 + 2 * slot))
            .unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        // The descriptor and ring entry must be visible before the index (§2.7.13).
        fence(Ordering::SeqCst);
        mem.store(
            self.avail_idx,
            self.avail.unchecked_add(2),
            Ordering::Release,
        )
        .unwrap();
    }

    /// Used elements the device returned since the last call: (descriptor id, bytes written).
    fn take_used(&mut self, mem: &GuestMemoryMmap) -> Vec<(u16, u32)> {
        let used_idx: u16 = mem
            .load(self.used.unchecked_add(2), Ordering::Acquire)
            .unwrap();
        let mut taken = Vec::new();
        while self.used_seen != used_idx {
            let slot = u64::from(self.used_seen % QUEUE_SIZE);
            let elem = self.used.unchecked_add(4 + 8 * slot);
            let id: u32 = mem.read_obj(elem).unwrap();
            let len: u32 = mem.read_obj(elem.unchecked_add(4)).unwrap();
            taken.push((id as u16, len));
            self.used_seen = self.used_seen.wrapping_add(1);
        }
        // used_event (EVENT_IDX): interrupt us for anything past what we have seen.
        mem.store(
            self.used_seen,
            self.avail.unchecked_add(4 + 2 * u64::from(QUEUE_SIZE)),
            Ordering::Release,
        )
        .unwrap();
        taken
    }
}

/// A device driven by this driver.
pub struct Driver {
    pub mem: GuestMemoryMmap,
    rx: Ring,
    tx: Ring,
    rx_event: EventFd,
    tx_event: EventFd,
    irq: EventFd,
    pub interrupt: Arc<Interrupt>,
}

impl Driver {
    /// Lays out both queues, fills the receive queue with buffers, and activates `device`.
    pub fn activate(device: &mut dyn VirtioDevice, event_idx: bool) -> Driver {
        let mut driver = Self::activate_without_rx_buffers(device, event_idx);
        driver.post_rx_buffers();
        driver
    }

    /// Gives every free receive descriptor to the device.
    pub fn post_rx_buffers(&mut self) {
        while let Some(id) = self.rx.free.pop() {
            self.rx.offer(&self.mem, id, BUFFER_LEN, DESC_F_WRITE);
        }
        self.rx_event.write(1).unwrap();
    }

    /// [`activate`](Self::activate), but the receive queue starts empty.
    pub fn activate_without_rx_buffers(device: &mut dyn VirtioDevice, event_idx: bool) -> Driver {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_BYTES)]).unwrap();
        // Each ring: 256 buffers of BUFFER_LEN after its first 64 KiB.
        let rx = Ring::new(0x10_0000);
        let tx = Ring::new(0x70_0000);
        let rx_event = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let tx_event = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let interrupt = Arc::new(Interrupt::new(irq.try_clone().unwrap()));
        let driver = Driver {
            mem,
            rx,
            tx,
            rx_event,
            tx_event,
            irq,
            interrupt,
        };
        let activation = Activation {
            mem: driver.mem.clone(),
            // Queue 0 is receiveq, 1 transmitq.
            queues: vec![
                driver.rx.queue(&driver.mem, event_idx),
                driver.tx.queue(&driver.mem, event_idx),
            ],
            queue_events: vec![
                driver.rx_event.try_clone().unwrap(),
                driver.tx_event.try_clone().unwrap(),
            ],
            interrupt: Arc::clone(&driver.interrupt),
            features: features::VERSION_1
                | if event_idx {
                    features::RING_EVENT_IDX
                } else {
                    0
                }
                | super::super::features::MAC
                | super::super::features::STATUS,
        };
        device.activate(activation).unwrap();
        driver
    }

    /// Frames the device delivered since the last call (their receive buffers go back at once).
    pub fn receive(&mut self) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        for (id, len) in self.rx.take_used(&self.mem) {
            let mut buffer = vec![0; len as usize];
            self.mem
                .read_slice(&mut buffer, self.rx.buffer(id))
                .unwrap();
            assert!(
                len as usize >= HEADER_LEN,
                "a used receive buffer without a header"
            );
            assert_eq!(
                &buffer[..HEADER_LEN],
                &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0],
                "virtio_net_hdr_v1"
            );
            frames.push(buffer.split_off(HEADER_LEN));
            self.rx.offer(&self.mem, id, BUFFER_LEN, DESC_F_WRITE);
        }
        if !frames.is_empty() {
            self.rx_event.write(1).unwrap();
        }
        frames
    }

    /// Makes the receive ring's index claim more buffers than the ring holds (a hostile driver).
    pub fn corrupt_rx_avail_idx(&mut self) {
        let bogus = self.rx.avail_idx.wrapping_add(QUEUE_SIZE + 1);
        self.mem
            .store(bogus, self.rx.avail.unchecked_add(2), Ordering::Release)
            .unwrap();
        self.rx_event.write(1).unwrap();
    }

    /// Transmit descriptors free for [`send`](Self::send).
    pub fn can_send(&mut self) -> bool {
        for (id, _) in self.tx.take_used(&self.mem) {
            self.tx.free.push(id);
        }
        !self.tx.free.is_empty()
    }

    /// Queues `frame` (a zero header in front) for transmission and notifies the device.
    pub fn send(&mut self, frame: &[u8]) {
        assert!(
            frame.len() <= MAX_FRAME,
            "the test sent a frame of {}",
            frame.len()
        );
        self.send_raw(&[&[0; HEADER_LEN], frame].concat());
    }

    /// Queues `bytes` as one transmit chain, whatever they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        assert!(self.can_send(), "no free transmit descriptor");
        let id = self.tx.free.pop().unwrap();
        assert!(bytes.len() <= BUFFER_LEN as usize);
        self.mem.write_slice(bytes, self.tx.buffer(id)).unwrap();
        self.tx.offer(&self.mem, id, bytes.len() as u32, 0);
        self.tx_event.write(1).unwrap();
    }

    /// Waits up to `timeout` for an interrupt (consuming it), as a guest would sleep.
    pub fn wait_interrupt(&self, timeout: std::time::Duration) {
        let mut fd = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&self.irq),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll reads and writes one valid pollfd.
        unsafe { libc::poll(&mut fd, 1, timeout.as_millis() as libc::c_int) };
        let _ = self.irq.read();
    }
}
