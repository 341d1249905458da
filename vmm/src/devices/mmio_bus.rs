//! The MMIO bus: where each virtio-mmio device's 4 KiB window lives in guest-physical space, which
//! interrupt line it raises, and how the guest learns both — a `virtio_mmio.device=4K@ADDR:IRQ`
//! word on the kernel command line, the form Firecracker and QEMU microvm use.
//!
//! Windows start at 0xd0000000 (inside the 3..4 GiB MMIO hole) and lines at IOAPIC pin 5 (up to
//! 22: pin 23 is the host-request line of `pvport::requests`).

use super::virtio::mmio::{MmioTransport, QUEUE_NOTIFY_OFFSET, WINDOW_BYTES};
use super::virtio::{Interrupt, VirtioDevice};
use anyhow::{Context, bail};
use kvm_ioctls::{IoEventAddress, VmFd};
use std::sync::{Arc, Mutex};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

/// First device window.
pub const MMIO_BASE: u64 = 0xd000_0000;
/// First interrupt line (GSI / IOAPIC pin); 0–4 are the legacy ISA lines (COM1 is 4).
pub const FIRST_GSI: u32 = 5;
/// The in-kernel IOAPIC has 24 pins; the last one is the host-request line.
const LAST_GSI: u32 = super::pvport::requests::REQUEST_GSI - 1;

/// The virtio-mmio devices of a VM.
#[derive(Default)]
pub struct MmioBus {
    windows: Vec<(u64, Mutex<MmioTransport>)>,
}

impl MmioBus {
    /// Adds `device`: its window, its line (irqfd), its queue notifications (ioeventfds), and its
    /// word on the kernel command line `cmdline`.
    pub fn attach(
        &mut self,
        vm: &VmFd,
        mem: &GuestMemoryMmap,
        device: Box<dyn VirtioDevice>,
        name: &str,
        cmdline: &mut String,
    ) -> anyhow::Result<()> {
        let index = self.windows.len() as u32;
        let gsi = FIRST_GSI + index;
        if gsi > LAST_GSI {
            bail!(
                "too many devices: {name} would need interrupt line {gsi}, the IOAPIC has {LAST_GSI}"
            );
        }
        let base = MMIO_BASE + u64::from(index) * WINDOW_BYTES;
        let name = format!("{name}@{base:#x}");
        let irqfd = EventFd::new(libc::EFD_NONBLOCK).context("eventfd for an interrupt line")?;
        vm.register_irqfd(&irqfd, gsi)
            .with_context(|| format!("KVM_IRQFD for {name}"))?;
        let interrupt = Arc::new(Interrupt::new(irqfd));
        let transport = MmioTransport::new(device, name.clone(), mem.clone(), interrupt)?;
        for (queue, event) in transport.queue_events().iter().enumerate() {
            let notify = IoEventAddress::Mmio(base + QUEUE_NOTIFY_OFFSET);
            vm.register_ioevent(event, &notify, queue as u32)
                .with_context(|| format!("KVM_IOEVENTFD for queue {queue} of {name}"))?;
        }
        if !cmdline.is_empty() {
            cmdline.push(' ');
        }
        cmdline.push_str(&format!("virtio_mmio.device=4K@{base:#x}:{gsi}"));
        self.windows.push((base, Mutex::new(transport)));
        Ok(())
    }

    fn find(&self, addr: u64) -> Option<(u64, &Mutex<MmioTransport>)> {
        let index = addr.checked_sub(MMIO_BASE)? / WINDOW_BYTES;
        let (base, transport) = self.windows.get(index as usize)?;
        Some((addr - base, transport))
    }

    /// A guest read at `addr`; false if no device is there.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        let Some((offset, transport)) = self.find(addr) else {
            return false;
        };
        transport
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .read(offset, data);
        true
    }

    /// A guest write at `addr`; false if no device is there.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        let Some((offset, transport)) = self.find(addr) else {
            return false;
        };
        transport
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write(offset, data);
        true
    }
}
