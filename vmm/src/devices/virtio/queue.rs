//! Serving a queue: pop available descriptor chains, let the device handle each, return them to
//! the used ring, and interrupt the driver only when it asked to be (EVENT_IDX). The loop re-checks
//! after re-enabling notifications, so a chain the driver adds in between is never missed. Every
//! device serves its queues through here, so the defences against bogus rings live in one place.

use super::{Interrupt, Queue};
use virtio_queue::{DescriptorChain, QueueOwnedT, QueueT};
use vm_memory::GuestMemoryMmap;

/// A chain as the devices see it.
pub type Chain<'a> = DescriptorChain<&'a GuestMemoryMmap>;

/// What a handler did with a chain it took.
pub enum Handled {
    /// Return it to the driver with this many bytes written into it.
    Used(u32),
    /// Not needed after all: leave it in the ring for a later pass.
    PutBack,
}

/// What one pass over a queue does with the chains it pops.
pub trait ChainHandler {
    /// Whether to take another chain (a receive queue: only while there is something to give).
    fn wants_chain(&self) -> bool {
        true
    }
    fn handle(&mut self, chain: Chain<'_>, mem: &GuestMemoryMmap) -> Handled;
    /// Whether to interrupt as soon as a used chain reaches what the driver asked for, rather
    /// than once at the end of the pass. For devices whose chains each take long (a disk read):
    /// the driver then works on the first answers while the rest are still being served.
    fn answers_early(&self) -> bool {
        false
    }
}

/// Serves `queue` while `handler` wants chains. Chains it does not want now stay in the ring; with
/// EVENT_IDX the driver then does not notify until we take them, and we come back for them when
/// we want them, without waiting for a notification. Returns false if the queue's rings are
/// unusable (the caller stops using it).
pub fn serve_chains(
    queue: &mut Queue,
    mem: &GuestMemoryMmap,
    interrupt: &Interrupt,
    handler: &mut impl ChainHandler,
) -> bool {
    let mut used_any = false;
    // A pass that pops nothing although the ring says more arrived means the driver's ring is
    // bogus (its avail index more than a queue ahead, or its used ring overlapping avail.idx,
    // which our own notification toggling then keeps changing): give up rather than spin.
    let mut popped_this_pass = true;
    let usable = 'pass: loop {
        if queue.disable_notification(mem).is_err() {
            break false;
        }
        while handler.wants_chain() {
            let chain = match queue.iter(mem) {
                Ok(mut available) => available.next(),
                Err(_) => break 'pass false,
            };
            let Some(chain) = chain else { break };
            popped_this_pass = true;
            let head = chain.head_index();
            match handler.handle(chain, mem) {
                Handled::Used(len) => {
                    if queue.add_used(mem, head, len).is_err() {
                        break 'pass false; // a head index outside the queue
                    }
                    used_any = true;
                    if handler.answers_early()
                        && queue.event_idx_enabled()
                        && queue.needs_notification(mem).unwrap_or(true)
                    {
                        interrupt.signal_used_queue();
                        used_any = false;
                    }
                }
                Handled::PutBack => {
                    queue.go_to_previous_position();
                    // Chains remain, so "more arrived" would loop: we are done for now.
                    break 'pass queue.enable_notification(mem).is_ok();
                }
            }
        }
        match queue.enable_notification(mem) {
            Ok(true) if handler.wants_chain() && popped_this_pass => popped_this_pass = false,
            Ok(true) if handler.wants_chain() => break false,
            Ok(_) => break true,
            Err(_) => break false,
        }
    };
    if used_any && queue.needs_notification(mem).unwrap_or(true) {
        interrupt.signal_used_queue();
    }
    usable
}

/// Serves every available chain of `queue` with `handle`, which returns the number of bytes it
/// wrote into the chain. Returns false if the queue's rings are unusable.
pub fn serve(
    queue: &mut Queue,
    mem: &GuestMemoryMmap,
    interrupt: &Interrupt,
    handle: impl FnMut(Chain<'_>) -> u32,
) -> bool {
    serve_chains(queue, mem, interrupt, &mut Each(handle, false))
}

/// [`serve`], interrupting as soon as the driver's `used_event` is reached instead of at the end
/// of the pass ([`ChainHandler::answers_early`]).
pub fn serve_answering_early(
    queue: &mut Queue,
    mem: &GuestMemoryMmap,
    interrupt: &Interrupt,
    handle: impl FnMut(Chain<'_>) -> u32,
) -> bool {
    serve_chains(queue, mem, interrupt, &mut Each(handle, true))
}

/// A closure as a handler that uses every chain.
struct Each<F>(F, bool);

impl<F: FnMut(Chain<'_>) -> u32> ChainHandler for Each<F> {
    fn handle(&mut self, chain: Chain<'_>, _mem: &GuestMemoryMmap) -> Handled {
        Handled::Used((self.0)(chain))
    }
    fn answers_early(&self) -> bool {
        self.1
    }
}
