//! virtio-rng's queue processing: a fuzzer-built split virtqueue (descriptor table, available
//! ring, indirect tables, buffers anywhere in or out of a 64 KiB guest memory) served once by the
//! device's I/O thread (`queue::serve` and the fill of each chain's writable buffers).

#![no_main]

use libfuzzer_sys::fuzz_target;
use vmm::devices::virtio::rng::Rng;
use vmm::devices::virtio::{VirtioDevice, features};
use vmm_fuzz::{Ring, guest_memory, queue, run_device};

fuzz_target!(|ring: Ring| {
    let mem = guest_memory(ring.two_regions);
    let mut rng = Rng::new();
    let max = rng.queue_max_sizes()[0];
    let Some(queue) = queue(&mem, &ring, max) else {
        return;
    };
    let mut negotiated = features::VERSION_1;
    if ring.event_idx {
        negotiated |= features::RING_EVENT_IDX;
    }
    run_device(&mut rng, &mem, vec![queue], negotiated);
});
