//! The virtio-mmio transport (virtio 1.2 §4.2, version 2 "modern" only): the register window the
//! driver programs, in front of one [`VirtioDevice`].
//!
//! vCPU threads call [`MmioTransport::read`] and [`MmioTransport::write`] for accesses in the
//! device's 4 KiB window. Queue notifications normally never get here: KVM turns writes of the
//! queue index to QueueNotify into a signal on that queue's eventfd (ioeventfd). Everything the
//! driver writes is checked: unknown registers, wrong widths, queue sizes that are not a power of
//! two, queues outside guest memory, features we never offered. A device the driver set up badly
//! gets DEVICE_NEEDS_RESET, and the problem is logged once.

use super::{Activation, Interrupt, Queue, VirtioDevice, features};
use std::sync::Arc;
use virtio_queue::QueueT;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

/// Size of each device's register window.
pub const WINDOW_BYTES: u64 = 0x1000;

const MAGIC: u32 = 0x7472_6976; // "virt"
const VERSION: u32 = 2;
const VENDOR_ID: u32 = 0x004e_4f41; // "NOA"

// Register offsets.
const REG_MAGIC: u64 = 0x000;
const REG_VERSION: u64 = 0x004;
const REG_DEVICE_ID: u64 = 0x008;
const REG_VENDOR_ID: u64 = 0x00c;
const REG_DEVICE_FEATURES: u64 = 0x010;
const REG_DEVICE_FEATURES_SEL: u64 = 0x014;
const REG_DRIVER_FEATURES: u64 = 0x020;
const REG_DRIVER_FEATURES_SEL: u64 = 0x024;
const REG_QUEUE_SEL: u64 = 0x030;
const REG_QUEUE_NUM_MAX: u64 = 0x034;
const REG_QUEUE_NUM: u64 = 0x038;
const REG_QUEUE_READY: u64 = 0x044;
const REG_QUEUE_NOTIFY: u64 = 0x050;
const REG_INTERRUPT_STATUS: u64 = 0x060;
const REG_INTERRUPT_ACK: u64 = 0x064;
const REG_STATUS: u64 = 0x070;
const REG_QUEUE_DESC_LOW: u64 = 0x080;
const REG_QUEUE_DESC_HIGH: u64 = 0x084;
const REG_QUEUE_DRIVER_LOW: u64 = 0x090;
const REG_QUEUE_DRIVER_HIGH: u64 = 0x094;
const REG_QUEUE_DEVICE_LOW: u64 = 0x0a0;
const REG_QUEUE_DEVICE_HIGH: u64 = 0x0a4;
const REG_CONFIG_GENERATION: u64 = 0x0fc;
const CONFIG_SPACE: u64 = 0x100;

/// Offset of QueueNotify, where KVM's ioeventfds listen.
pub const QUEUE_NOTIFY_OFFSET: u64 = REG_QUEUE_NOTIFY;

// Device status bits.
const STATUS_DRIVER: u32 = 2;
const STATUS_DRIVER_OK: u32 = 4;
const STATUS_FEATURES_OK: u32 = 8;
const STATUS_NEEDS_RESET: u32 = 0x40;

pub struct MmioTransport {
    device: Box<dyn VirtioDevice>,
    /// For log lines: "virtio-rng@0xd0000000".
    name: String,
    mem: GuestMemoryMmap,
    interrupt: Arc<Interrupt>,
    queue_events: Vec<EventFd>,
    queues: Vec<Queue>,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    status: u32,
    config_generation: u32,
    /// A problem was logged since the last reset (we log once, not per access).
    complained: bool,
}

impl MmioTransport {
    pub fn new(
        device: Box<dyn VirtioDevice>,
        name: String,
        mem: GuestMemoryMmap,
        interrupt: Arc<Interrupt>,
    ) -> anyhow::Result<Self> {
        let queues = device
            .queue_max_sizes()
            .iter()
            .map(|&max| {
                Queue::new(max).map_err(|e| anyhow::anyhow!("{name}: queue of {max}: {e:?}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let queue_events = (0..queues.len())
            .map(|_| {
                EventFd::new(libc::EFD_NONBLOCK)
                    .map_err(|e| anyhow::anyhow!("{name}: eventfd: {e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(MmioTransport {
            device,
            name,
            mem,
            interrupt,
            queue_events,
            queues,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            status: 0,
            config_generation: 0,
            complained: false,
        })
    }

    /// One eventfd per queue, to register as ioeventfds on QueueNotify with the queue index.
    pub fn queue_events(&self) -> &[EventFd] {
        &self.queue_events
    }

    fn offered_features(&self) -> u64 {
        self.device.device_features() | features::COMMON
    }

    fn complain(&mut self, what: impl Into<String>) {
        let what = what.into();
        if !self.complained {
            tracing::warn!(
                "{}: {what} (further problems not logged until reset)",
                self.name
            );
            self.complained = true;
        }
    }

    fn selected_queue(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    /// A driver read at `offset` in the window.
    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= CONFIG_SPACE {
            self.device.read_config(offset - CONFIG_SPACE, data);
            return;
        }
        let Ok(bytes) = <&mut [u8; 4]>::try_from(&mut *data) else {
            self.complain(format!("{}-byte read of register {offset:#x}", data.len()));
            data.fill(0xff);
            return;
        };
        let value = match offset {
            REG_MAGIC => MAGIC,
            REG_VERSION => VERSION,
            REG_DEVICE_ID => self.device.device_type(),
            REG_VENDOR_ID => VENDOR_ID,
            REG_DEVICE_FEATURES => match self.device_features_sel {
                0 => self.offered_features() as u32,
                1 => (self.offered_features() >> 32) as u32,
                _ => 0,
            },
            REG_QUEUE_NUM_MAX => self.selected_queue().map_or(0, |q| u32::from(q.max_size())),
            REG_QUEUE_READY => self.selected_queue().map_or(0, |q| u32::from(q.ready())),
            REG_INTERRUPT_STATUS => self.interrupt.status(),
            REG_STATUS => self.status,
            REG_CONFIG_GENERATION => self.config_generation,
            _ => {
                self.complain(format!(
                    "read of write-only or unknown register {offset:#x}"
                ));
                0
            }
        };
        *bytes = value.to_le_bytes();
    }

    /// A driver write at `offset` in the window.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        tracing::trace!("{}: write {offset:#x} {data:x?}", self.name);
        if offset >= CONFIG_SPACE {
            if self.status & STATUS_DRIVER == 0 {
                self.complain("config write before the driver set DRIVER");
                return;
            }
            self.device.write_config(offset - CONFIG_SPACE, data);
            return;
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            self.complain(format!("{}-byte write of register {offset:#x}", data.len()));
            return;
        };
        let value = u32::from_le_bytes(bytes);
        match offset {
            REG_DEVICE_FEATURES_SEL => self.device_features_sel = value,
            REG_DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            REG_DRIVER_FEATURES => self.write_driver_features(value),
            REG_QUEUE_SEL => self.queue_sel = value,
            REG_QUEUE_NOTIFY => self.notify_without_ioeventfd(value),
            REG_INTERRUPT_ACK => self.interrupt.acknowledge(value),
            REG_STATUS => self.write_status(value),
            REG_QUEUE_NUM | REG_QUEUE_READY | REG_QUEUE_DESC_LOW..=REG_QUEUE_DEVICE_HIGH => {
                self.write_queue_register(offset, value)
            }
            _ => self.complain(format!(
                "write of read-only or unknown register {offset:#x}"
            )),
        }
    }

    fn write_driver_features(&mut self, value: u32) {
        if self.status & (STATUS_FEATURES_OK | STATUS_DRIVER_OK) != 0
            || self.status & STATUS_DRIVER == 0
        {
            self.complain(format!("feature write in status {:#x}", self.status));
            return;
        }
        match self.driver_features_sel {
            0 => self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(value),
            1 => {
                self.driver_features = (self.driver_features & 0xffff_ffff) | u64::from(value) << 32
            }
            _ => self.complain(format!(
                "driver feature word {} does not exist",
                self.driver_features_sel
            )),
        }
    }

    fn write_queue_register(&mut self, offset: u64, value: u32) {
        // Writing 0 to QueueReady is how a driver stops using a queue, at any time (virtio 1.2
        // §4.2.2.2); it reads the register back until it sees 0.
        if offset == REG_QUEUE_READY && value == 0 {
            if let Some(queue) = self.selected_queue() {
                queue.set_ready(false);
            }
            return;
        }
        let (status, queue_sel) = (self.status, self.queue_sel);
        let Some(queue) = self.selected_queue() else {
            self.complain(format!("queue {queue_sel} does not exist"));
            return;
        };
        // A live queue's registers are fixed; a stopped one may be set up again.
        if status & STATUS_FEATURES_OK == 0 || (status & STATUS_DRIVER_OK != 0 && queue.ready()) {
            self.complain(format!(
                "queue register {offset:#x} written in status {status:#x}"
            ));
            return;
        }
        match offset {
            // virtio-queue refuses sizes that are not a power of two up to the maximum; the
            // queue then fails validation at DRIVER_OK.
            REG_QUEUE_NUM => queue.set_size(value as u16),
            REG_QUEUE_READY => queue.set_ready(value == 1),
            REG_QUEUE_DESC_LOW => queue.set_desc_table_address(Some(value), None),
            REG_QUEUE_DESC_HIGH => queue.set_desc_table_address(None, Some(value)),
            REG_QUEUE_DRIVER_LOW => queue.set_avail_ring_address(Some(value), None),
            REG_QUEUE_DRIVER_HIGH => queue.set_avail_ring_address(None, Some(value)),
            REG_QUEUE_DEVICE_LOW => queue.set_used_ring_address(Some(value), None),
            REG_QUEUE_DEVICE_HIGH => queue.set_used_ring_address(None, Some(value)),
            _ => {}
        }
    }

    /// A notification that reached the VMM (no ioeventfd for it): pass it on the same way.
    fn notify_without_ioeventfd(&mut self, queue: u32) {
        match self.queue_events.get(queue as usize) {
            Some(event) => {
                let _ = event.write(1);
            }
            None => self.complain(format!(
                "notification of queue {queue}, which does not exist"
            )),
        }
    }

    fn write_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        let added = value & !self.status;
        if value & self.status != self.status {
            self.complain(format!(
                "status {:#x} clears bits of {:#x} without a reset",
                value, self.status
            ));
            return;
        }
        if added & STATUS_FEATURES_OK != 0 && !self.features_acceptable() {
            // Leaving FEATURES_OK clear tells the driver we refuse its feature set.
            self.status = value & !STATUS_FEATURES_OK;
            return;
        }
        self.status = value;
        if added & STATUS_DRIVER_OK != 0 {
            self.activate();
        }
    }

    fn features_acceptable(&mut self) -> bool {
        let unknown = self.driver_features & !self.offered_features();
        if unknown != 0 {
            self.complain(format!(
                "driver accepted features {unknown:#x} we never offered"
            ));
            return false;
        }
        if self.driver_features & features::VERSION_1 == 0 {
            self.complain("legacy driver (no VIRTIO_F_VERSION_1)");
            return false;
        }
        true
    }

    fn activate(&mut self) {
        if self.status & STATUS_FEATURES_OK == 0 {
            return self.needs_reset("DRIVER_OK without FEATURES_OK");
        }
        let event_idx = self.driver_features & features::RING_EVENT_IDX != 0;
        let mut queues = Vec::new();
        let mut events = Vec::new();
        for (index, queue) in self.queues.iter_mut().enumerate() {
            if !queue.ready() {
                continue;
            }
            if !queue.is_valid(&self.mem) {
                return self.needs_reset(format!(
                    "queue {index} is invalid (size or rings outside guest memory)"
                ));
            }
            queue.set_event_idx(event_idx);
            // The device gets its own copy; the transport keeps the registers' view.
            match Queue::try_from(queue.state()) {
                Ok(copy) => queues.push(copy),
                Err(e) => return self.needs_reset(format!("queue {index}: {e:?}")),
            }
            match self.queue_events[index].try_clone() {
                Ok(event) => events.push(event),
                Err(e) => {
                    return self
                        .needs_reset(format!("cannot clone the eventfd of queue {index}: {e}"));
                }
            }
        }
        let activation = Activation {
            mem: self.mem.clone(),
            queues,
            queue_events: events,
            interrupt: Arc::clone(&self.interrupt),
            features: self.driver_features,
        };
        if let Err(e) = self.device.activate(activation) {
            self.needs_reset(format!("activation failed: {e:#}"));
        }
    }

    fn needs_reset(&mut self, why: impl Into<String>) {
        self.complain(why);
        self.status |= STATUS_NEEDS_RESET;
        self.config_generation = self.config_generation.wrapping_add(1);
        self.interrupt.signal_config_change();
    }

    fn reset(&mut self) {
        self.device.reset();
        for queue in &mut self.queues {
            queue.reset();
        }
        self.interrupt.acknowledge(u32::MAX);
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        self.status = 0;
        self.complained = false;
    }
}
