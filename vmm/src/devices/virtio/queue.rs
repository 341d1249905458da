//! Serving a queue: pop every available descriptor chain, let the device handle it, return it to
//! the used ring, and interrupt the driver only when it asked to be (EVENT_IDX). The loop re-checks
//! after re-enabling notifications, so a chain the driver adds in between is never missed.

use super::{Interrupt, Queue};
use virtio_queue::{DescriptorChain, QueueT};
use vm_memory::GuestMemoryMmap;

/// A chain as the devices see it.
pub type Chain<'a> = DescriptorChain<&'a GuestMemoryMmap>;

/// Serves every available chain of `queue` with `handle`, which returns the number of bytes it
/// wrote into the chain. Returns false if the queue's rings are unusable (the caller stops using it).
pub fn serve(
    queue: &mut Queue,
    mem: &GuestMemoryMmap,
    interrupt: &Interrupt,
    mut handle: impl FnMut(Chain<'_>) -> u32,
) -> bool {
    let mut used_any = false;
    let mut popped_this_pass = true;
    loop {
        if queue.disable_notification(mem).is_err() {
            return false;
        }
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            popped_this_pass = true;
            let head = chain.head_index();
            let written = handle(chain);
            if queue.add_used(mem, head, written).is_err() {
                return false;
            }
            used_any = true;
        }
        match queue.enable_notification(mem) {
            // More arrived while notifications were off. Twice with nothing to pop means the
            // driver's available index is bogus (ahead by more than the queue size): give up
            // rather than spin.
            Ok(true) if popped_this_pass => popped_this_pass = false,
            Ok(true) => return false,
            Ok(false) => break,
            Err(_) => return false,
        }
    }
    if used_any && queue.needs_notification(mem).unwrap_or(true) {
        interrupt.signal_used_queue();
    }
    true
}
