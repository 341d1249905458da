//! Time structures and constants: `timespec`, `timeval`, `timezone`, `itimerval`,
//! `itimerspec`, `tms`, clock ids, `TIMER_ABSTIME`, `ITIMER_*`, `UTIME_*`
//! (`include/uapi/linux/time.h`, `time_types.h`, `times.h`). All are 64-bit on x86-64.

use crate::bytes::*;
use crate::errno::Errno;

pub const CLOCK_REALTIME: u32 = 0;
pub const CLOCK_MONOTONIC: u32 = 1;
pub const CLOCK_PROCESS_CPUTIME_ID: u32 = 2;
pub const CLOCK_THREAD_CPUTIME_ID: u32 = 3;
pub const CLOCK_MONOTONIC_RAW: u32 = 4;
pub const CLOCK_REALTIME_COARSE: u32 = 5;
pub const CLOCK_MONOTONIC_COARSE: u32 = 6;
pub const CLOCK_BOOTTIME: u32 = 7;
pub const CLOCK_REALTIME_ALARM: u32 = 8;
pub const CLOCK_BOOTTIME_ALARM: u32 = 9;
pub const CLOCK_TAI: u32 = 11;

/// `clock_nanosleep`/`timer_settime`/`timerfd_settime`: the time is absolute.
pub const TIMER_ABSTIME: u32 = 1;
pub const TFD_TIMER_ABSTIME: u32 = 1;
pub const TFD_TIMER_CANCEL_ON_SET: u32 = 2;

pub const ITIMER_REAL: u32 = 0;
pub const ITIMER_VIRTUAL: u32 = 1;
pub const ITIMER_PROF: u32 = 2;

/// `utimensat` `tv_nsec` values.
pub const UTIME_NOW: i64 = (1 << 30) - 1;
pub const UTIME_OMIT: i64 = (1 << 30) - 2;

pub const NSEC_PER_SEC: i64 = 1_000_000_000;

/// `struct timespec` (16 bytes: `tv_sec`, `tv_nsec`, both i64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timespec {
    pub sec: i64,
    pub nsec: i64,
}

impl Timespec {
    pub const SIZE: usize = 16;
    pub const fn from_nanos(ns: u64) -> Self {
        Timespec {
            sec: (ns / 1_000_000_000) as i64,
            nsec: (ns % 1_000_000_000) as i64,
        }
    }
    /// Total nanoseconds, `None` when negative or overflowing.
    pub const fn to_nanos(&self) -> Option<u64> {
        if self.sec < 0 || self.nsec < 0 {
            return None;
        }
        match (self.sec as u64).checked_mul(1_000_000_000) {
            Some(s) => s.checked_add(self.nsec as u64),
            None => None,
        }
    }
    /// Linux `timespec64_valid`: `sec >= 0` and `0 <= nsec < 1e9`; else `EINVAL`.
    pub const fn validate(&self) -> Result<(), Errno> {
        if self.sec < 0 || self.nsec < 0 || self.nsec >= NSEC_PER_SEC {
            Err(Errno::EINVAL)
        } else {
            Ok(())
        }
    }
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put_i64(&mut b, 0, self.sec);
        put_i64(&mut b, 8, self.nsec);
        b
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(Timespec {
            sec: i64_at(b, 0),
            nsec: i64_at(b, 8),
        })
    }
}

/// `struct timeval` (16 bytes: `tv_sec`, `tv_usec`, both i64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timeval {
    pub sec: i64,
    pub usec: i64,
}

impl Timeval {
    pub const SIZE: usize = 16;
    pub const fn from_nanos(ns: u64) -> Self {
        Timeval {
            sec: (ns / 1_000_000_000) as i64,
            usec: ((ns % 1_000_000_000) / 1000) as i64,
        }
    }
    pub const fn to_nanos(&self) -> Option<u64> {
        if self.sec < 0 || self.usec < 0 {
            return None;
        }
        match (self.sec as u64).checked_mul(1_000_000_000) {
            Some(s) => s.checked_add(self.usec as u64 * 1000),
            None => None,
        }
    }
    /// `sec >= 0` and `0 <= usec < 1e6`; else `EINVAL`.
    pub const fn validate(&self) -> Result<(), Errno> {
        if self.sec < 0 || self.usec < 0 || self.usec >= 1_000_000 {
            Err(Errno::EINVAL)
        } else {
            Ok(())
        }
    }
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put_i64(&mut b, 0, self.sec);
        put_i64(&mut b, 8, self.usec);
        b
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(Timeval {
            sec: i64_at(b, 0),
            usec: i64_at(b, 8),
        })
    }
}

/// `struct timezone` (8 bytes: `tz_minuteswest`, `tz_dsttime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timezone {
    pub minuteswest: i32,
    pub dsttime: i32,
}

impl Timezone {
    pub const SIZE: usize = 8;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put_i32(&mut b, 0, self.minuteswest);
        put_i32(&mut b, 4, self.dsttime);
        b
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(Timezone {
            minuteswest: i32_at(b, 0),
            dsttime: i32_at(b, 4),
        })
    }
}

/// `struct itimerval` (32 bytes: `it_interval`, `it_value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Itimerval {
    pub interval: Timeval,
    pub value: Timeval,
}

impl Itimerval {
    pub const SIZE: usize = 32;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[..16].copy_from_slice(&self.interval.encode());
        b[16..].copy_from_slice(&self.value.encode());
        b
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(Itimerval {
            interval: Timeval::decode(b)?,
            value: Timeval::decode(&b[16..])?,
        })
    }
}

/// `struct itimerspec` (32 bytes: `it_interval`, `it_value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Itimerspec {
    pub interval: Timespec,
    pub value: Timespec,
}

impl Itimerspec {
    pub const SIZE: usize = 32;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[..16].copy_from_slice(&self.interval.encode());
        b[16..].copy_from_slice(&self.value.encode());
        b
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(Itimerspec {
            interval: Timespec::decode(b)?,
            value: Timespec::decode(&b[16..])?,
        })
    }
}

/// `struct tms` for `times()` (32 bytes, four `clock_t` in `USER_HZ` ticks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tms {
    pub utime: i64,
    pub stime: i64,
    pub cutime: i64,
    pub cstime: i64,
}

impl Tms {
    pub const SIZE: usize = 32;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put_i64(&mut b, 0, self.utime);
        put_i64(&mut b, 8, self.stime);
        put_i64(&mut b, 16, self.cutime);
        put_i64(&mut b, 24, self.cstime);
        b
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(Tms {
            utime: i64_at(b, 0),
            stime: i64_at(b, 8),
            cutime: i64_at(b, 16),
            cstime: i64_at(b, 24),
        })
    }
}

/// Nanoseconds to `clock_t` ticks (`USER_HZ` = 100).
pub const fn nanos_to_clock_t(ns: u64) -> i64 {
    (ns / (1_000_000_000 / crate::stack::USER_HZ)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrips() {
        let t = Timespec {
            sec: 1_700_000_000,
            nsec: 123_456_789,
        };
        let b = t.encode();
        assert_eq!(&b[..8], &1_700_000_000i64.to_le_bytes());
        assert_eq!(Timespec::decode(&b), Some(t));
        assert_eq!(Timespec::from_nanos(t.to_nanos().unwrap()), t);
        assert_eq!(
            Timespec {
                sec: 0,
                nsec: NSEC_PER_SEC
            }
            .validate(),
            Err(Errno::EINVAL)
        );
        assert_eq!(Timespec { sec: -1, nsec: 0 }.to_nanos(), None);
        assert_eq!(
            Timespec {
                sec: i64::MAX,
                nsec: 0
            }
            .to_nanos(),
            None
        );
        let v = Timeval::from_nanos(1_500_000_000);
        assert_eq!(
            v,
            Timeval {
                sec: 1,
                usec: 500_000
            }
        );
        assert_eq!(Timeval::decode(&v.encode()), Some(v));
        assert_eq!(v.to_nanos(), Some(1_500_000_000));
        let z = Timezone {
            minuteswest: -60,
            dsttime: 0,
        };
        assert_eq!(Timezone::decode(&z.encode()), Some(z));
        let it = Itimerval {
            interval: v,
            value: Timeval { sec: 2, usec: 0 },
        };
        assert_eq!(Itimerval::decode(&it.encode()), Some(it));
        let is = Itimerspec {
            interval: t,
            value: t,
        };
        assert_eq!(Itimerspec::decode(&is.encode()), Some(is));
        let tm = Tms {
            utime: 1,
            stime: 2,
            cutime: 3,
            cstime: 4,
        };
        assert_eq!(i64_at(&tm.encode(), 24), 4);
        assert_eq!(Tms::decode(&tm.encode()), Some(tm));
        assert_eq!(nanos_to_clock_t(1_000_000_000), 100);
    }
}
