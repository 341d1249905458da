//! virtio-console's queue processing: a fuzzer-built receive and transmit queue in a 64 KiB guest
//! memory, served once by the device's I/O thread — transmit chains copied to an output sink
//! (which may fail), host input (from a pipe, or from a regular file that epoll cannot watch)
//! copied into receive chains.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::io::Write;
use std::os::fd::OwnedFd;
use virtio_queue::QueueT;
use vmm::devices::virtio::console::Console;
use vmm::devices::virtio::{VirtioDevice, features};
use vmm_fuzz::{Ring, guest_memory, queue, run_device};

/// Most bytes of host input per run (less than one read of the device, and than a pipe holds).
const MAX_INPUT: usize = 8 * 1024;

/// Where guest output goes: nowhere, or a sink that fails every write or flush.
struct Sink {
    fail: bool,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.fail {
            Err(std::io::Error::other("the sink is broken"))
        } else {
            Ok(buf.len())
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.fail {
            Err(std::io::Error::other("the sink is broken"))
        } else {
            Ok(())
        }
    }
}

#[derive(Arbitrary, Debug)]
enum HostInput {
    None,
    /// A pipe holding the bytes; `eof`: its write end is closed.
    Pipe {
        eof: bool,
    },
    /// A regular (memfd) file holding the bytes.
    File,
}

#[derive(Arbitrary, Debug)]
struct Input {
    rx: Ring,
    tx: Ring,
    host_input: HostInput,
    bytes: Vec<u8>,
    sink_fails: bool,
}

/// A pipe holding `bytes`: its read end, and its write end unless `eof`.
fn pipe(bytes: &[u8], eof: bool) -> Option<(OwnedFd, Option<std::fs::File>)> {
    let (read, write) = std::io::pipe().ok()?;
    let mut write = std::fs::File::from(OwnedFd::from(write));
    write.write_all(bytes).ok()?;
    Some((OwnedFd::from(read), (!eof).then_some(write)))
}

/// A memfd holding `bytes`, positioned at its start.
fn file(bytes: &[u8]) -> Option<OwnedFd> {
    // SAFETY: a NUL-terminated name; the returned fd, if any, is ours.
    let fd = unsafe { libc::memfd_create(c"console-input".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` was just created and nothing else owns it.
    let owned = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let mut file = std::fs::File::from(owned);
    file.write_all(bytes).ok()?;
    std::io::Seek::rewind(&mut file).ok()?;
    Some(OwnedFd::from(file))
}

fuzz_target!(|input: Input| {
    let bytes = &input.bytes[..input.bytes.len().min(MAX_INPUT)];
    let mut write_end = None;
    let host_input = match input.host_input {
        HostInput::None => None,
        HostInput::Pipe { eof } => {
            let Some((read, write)) = pipe(bytes, eof) else {
                return;
            };
            write_end = write;
            Some(read)
        }
        HostInput::File => {
            let Some(fd) = file(bytes) else {
                return;
            };
            Some(fd)
        }
    };
    let mem = guest_memory(input.rx.two_regions);
    let mut console = Console::new(
        Box::new(Sink {
            fail: input.sink_fails,
        }),
        host_input,
    );
    let max = console.queue_max_sizes()[0];
    let Some(rx) = queue(&mem, &input.rx, max) else {
        return;
    };
    let Some(mut tx) = queue(&mem, &input.tx, max) else {
        return;
    };
    // EVENT_IDX is negotiated for the device, not per queue.
    tx.set_event_idx(input.rx.event_idx);
    let mut negotiated = features::VERSION_1;
    if input.rx.event_idx {
        negotiated |= features::RING_EVENT_IDX;
    }
    run_device(&mut console, &mem, vec![rx, tx], negotiated);
    drop(write_end);
});
