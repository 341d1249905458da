//! Guest and host misbehaviour is logged once per activation, not once per packet: a flooding
//! guest must not flood the VMM's log either.

/// Each kind of problem we log.
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
pub enum Problem {
    TxBadAddress = 1 << 0,
    TxShort = 1 << 1,
    TxBadLength = 1 << 2,
    BadCid = 1 << 3,
    BadType = 1 << 4,
    RxBadAddress = 1 << 5,
    RxTooSmall = 1 << 6,
    QueueBroken = 1 << 7,
    TooManyConnections = 1 << 8,
    TooManyHandshakes = 1 << 9,
    ResetBacklogFull = 1 << 10,
    AcceptFailed = 1 << 11,
    EpollFailed = 1 << 12,
}

#[derive(Default)]
pub struct LogOnce {
    seen: u32,
}

impl LogOnce {
    /// Logs `message` as a warning, unless a problem of this kind was logged already.
    pub fn warn(&mut self, what: Problem, message: std::fmt::Arguments<'_>) {
        if self.seen & what as u32 == 0 {
            self.seen |= what as u32;
            tracing::warn!("virtio-vsock: {message} (not logged again until reset)");
        }
    }
}
