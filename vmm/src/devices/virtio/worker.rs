//! A device's I/O thread: an event-manager loop over the device's queue eventfds (signalled by
//! KVM's ioeventfds) and any host-side sources it needs (a tap, a socket), plus a stop event.
//!
//! The thread owns the device's [`QueueHandler`]; the device keeps a [`Worker`], and dropping it
//! (on reset, or when the VM ends) stops and joins the thread.

use event_manager::{EventManager, EventOps, EventSet, Events, MutEventSubscriber, SubscriberOps};
use std::os::fd::RawFd;
use std::thread::JoinHandle;
use vmm_sys_util::eventfd::EventFd;

/// What a device does on its I/O thread.
pub trait QueueHandler: Send + 'static {
    /// Queue `index` was notified by the driver.
    fn queue_notified(&mut self, index: usize);
    /// Host-side sources to watch besides the queues, with the events of interest.
    fn host_sources(&self) -> Vec<(RawFd, EventSet)> {
        Vec::new()
    }
    /// A host-side source is ready.
    fn host_ready(&mut self, _fd: RawFd, _events: EventSet) {}
}

/// The running I/O thread of one device.
pub struct Worker {
    stop: EventFd,
    thread: Option<JoinHandle<()>>,
}

/// Event data: queue indices are small; the stop event and host sources get tags above them.
const STOP_TAG: u32 = u32::MAX;
const HOST_TAG: u32 = u32::MAX - 1;

struct Subscriber<H: QueueHandler> {
    handler: H,
    queue_events: Vec<EventFd>,
    stop: EventFd,
    stopped: bool,
}

impl<H: QueueHandler> MutEventSubscriber for Subscriber<H> {
    fn init(&mut self, ops: &mut EventOps) {
        let mut add = |events: Events| {
            if let Err(e) = ops.add(events) {
                tracing::error!("virtio worker: cannot watch a source: {e:?}");
            }
        };
        add(Events::with_data(&self.stop, STOP_TAG, EventSet::IN));
        for (index, event) in self.queue_events.iter().enumerate() {
            add(Events::with_data(event, index as u32, EventSet::IN));
        }
        for (fd, set) in self.handler.host_sources() {
            add(Events::with_data_raw(fd, HOST_TAG, set));
        }
    }

    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        match events.data() {
            STOP_TAG => self.stopped = true,
            HOST_TAG => self.handler.host_ready(events.fd(), events.event_set()),
            index => {
                if let Some(event) = self.queue_events.get(index as usize) {
                    // Consume the count; one pass over the queue serves every notification.
                    let _ = event.read();
                    self.handler.queue_notified(index as usize);
                }
            }
        }
    }
}

impl Worker {
    /// Starts the I/O thread `name` serving `queue_events` with `handler`.
    pub fn spawn<H: QueueHandler>(
        name: &str,
        queue_events: Vec<EventFd>,
        handler: H,
    ) -> anyhow::Result<Worker> {
        let stop = EventFd::new(libc::EFD_NONBLOCK)?;
        let subscriber = Subscriber {
            handler,
            queue_events,
            stop: stop.try_clone()?,
            stopped: false,
        };
        let mut manager: EventManager<Subscriber<H>> =
            EventManager::new().map_err(|e| anyhow::anyhow!("{name}: event manager: {e:?}"))?;
        let id = manager.add_subscriber(subscriber);
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                loop {
                    if let Err(e) = manager.run() {
                        tracing::error!("virtio worker stopped: {e:?}");
                        return;
                    }
                    let stopped = manager
                        .subscriber_mut(id)
                        .map(|s| s.stopped)
                        .unwrap_or(true);
                    if stopped {
                        return;
                    }
                }
            })?;
        Ok(Worker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.stop.write(1);
        if let Some(thread) = self.thread.take()
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }
}
