//! Futexes: operations, flags, the `FUTEX_WAKE_OP` encoding, robust-list and `futex_waitv`
//! layouts (`include/uapi/linux/futex.h`).

use crate::bytes::*;

pub const FUTEX_WAIT: u32 = 0;
pub const FUTEX_WAKE: u32 = 1;
pub const FUTEX_FD: u32 = 2;
pub const FUTEX_REQUEUE: u32 = 3;
pub const FUTEX_CMP_REQUEUE: u32 = 4;
pub const FUTEX_WAKE_OP: u32 = 5;
pub const FUTEX_LOCK_PI: u32 = 6;
pub const FUTEX_UNLOCK_PI: u32 = 7;
pub const FUTEX_TRYLOCK_PI: u32 = 8;
pub const FUTEX_WAIT_BITSET: u32 = 9;
pub const FUTEX_WAKE_BITSET: u32 = 10;
pub const FUTEX_WAIT_REQUEUE_PI: u32 = 11;
pub const FUTEX_CMP_REQUEUE_PI: u32 = 12;
pub const FUTEX_LOCK_PI2: u32 = 13;
pub const FUTEX_PRIVATE_FLAG: u32 = 128;
pub const FUTEX_CLOCK_REALTIME: u32 = 256;
/// `op & FUTEX_CMD_MASK` is the command.
pub const FUTEX_CMD_MASK: u32 = !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
pub const FUTEX_WAIT_PRIVATE: u32 = FUTEX_WAIT | FUTEX_PRIVATE_FLAG;
pub const FUTEX_WAKE_PRIVATE: u32 = FUTEX_WAKE | FUTEX_PRIVATE_FLAG;
pub const FUTEX_WAIT_BITSET_PRIVATE: u32 = FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG;
pub const FUTEX_WAKE_BITSET_PRIVATE: u32 = FUTEX_WAKE_BITSET | FUTEX_PRIVATE_FLAG;
/// `val3` of `FUTEX_WAIT_BITSET`/`WAKE_BITSET` matching every waiter (plain WAIT/WAKE use it).
pub const FUTEX_BITSET_MATCH_ANY: u32 = 0xffff_ffff;

/// Robust-futex word bits.
pub const FUTEX_WAITERS: u32 = 0x8000_0000;
pub const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
pub const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
/// Most robust-list entries walked at exit.
pub const ROBUST_LIST_LIMIT: usize = 2048;

/// `futex_waitv` flags (futex2): size and private.
pub const FUTEX2_SIZE_U32: u32 = 0x02;
pub const FUTEX2_PRIVATE: u32 = FUTEX_PRIVATE_FLAG;

/// `struct robust_list_head` (24 bytes: `list.next`, `futex_offset`, `list_op_pending`);
/// `set_robust_list` requires `len == 24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RobustListHead {
    pub next: u64,
    pub futex_offset: i64,
    pub list_op_pending: u64,
}

impl RobustListHead {
    pub const SIZE: usize = 24;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put_u64(&mut b, 0, self.next);
        put_i64(&mut b, 8, self.futex_offset);
        put_u64(&mut b, 16, self.list_op_pending);
        b
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(RobustListHead {
            next: u64_at(b, 0),
            futex_offset: i64_at(b, 8),
            list_op_pending: u64_at(b, 16),
        })
    }
    /// Address of the futex word for a list entry at `entry`.
    pub const fn futex_addr(&self, entry: u64) -> u64 {
        entry.wrapping_add(self.futex_offset as u64)
    }
}

/// `struct futex_waitv` (24 bytes: `val` u64, `uaddr` u64, `flags` u32, `__reserved` u32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FutexWaitv {
    pub val: u64,
    pub uaddr: u64,
    pub flags: u32,
}

impl FutexWaitv {
    pub const SIZE: usize = 24;
    /// Decodes; `None` if short or `__reserved` is non-zero (Linux: `EINVAL`).
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE || u32_at(b, 20) != 0 {
            return None;
        }
        Some(FutexWaitv {
            val: u64_at(b, 0),
            uaddr: u64_at(b, 8),
            flags: u32_at(b, 16),
        })
    }
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put_u64(&mut b, 0, self.val);
        put_u64(&mut b, 8, self.uaddr);
        put_u32(&mut b, 16, self.flags);
        b
    }
}

pub const FUTEX_OP_SET: u32 = 0;
pub const FUTEX_OP_ADD: u32 = 1;
pub const FUTEX_OP_OR: u32 = 2;
pub const FUTEX_OP_ANDN: u32 = 3;
pub const FUTEX_OP_XOR: u32 = 4;
/// Use `1 << oparg` as the operand.
pub const FUTEX_OP_OPARG_SHIFT: u32 = 8;
pub const FUTEX_OP_CMP_EQ: u32 = 0;
pub const FUTEX_OP_CMP_NE: u32 = 1;
pub const FUTEX_OP_CMP_LT: u32 = 2;
pub const FUTEX_OP_CMP_LE: u32 = 3;
pub const FUTEX_OP_CMP_GT: u32 = 4;
pub const FUTEX_OP_CMP_GE: u32 = 5;

/// The `val3` word of `FUTEX_WAKE_OP`: `op:4 | cmp:4 | oparg:12 | cmparg:12` (the 12-bit
/// fields sign-extended, as Linux does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WakeOp {
    pub op: u32,
    pub cmp: u32,
    pub oparg: i32,
    pub cmparg: i32,
}

impl WakeOp {
    pub const fn decode(val3: u32) -> Self {
        let op = (val3 >> 28) & 0xf;
        let cmp = (val3 >> 24) & 0xf;
        let oparg = ((val3 << 8) as i32) >> 20;
        let cmparg = ((val3 << 20) as i32) >> 20;
        WakeOp {
            op,
            cmp,
            oparg,
            cmparg,
        }
    }
    pub const fn encode(op: u32, oparg: i32, cmp: u32, cmparg: i32) -> u32 {
        ((op & 0xf) << 28)
            | ((cmp & 0xf) << 24)
            | (((oparg as u32) & 0xfff) << 12)
            | ((cmparg as u32) & 0xfff)
    }
    /// The new value of the second futex word, or `None` for an unknown op (`ENOSYS`).
    /// With `FUTEX_OP_OPARG_SHIFT`, an `oparg` outside 0..=31 is masked, as Linux does after
    /// warning.
    pub const fn apply(&self, old: u32) -> Option<u32> {
        let shift = self.op & FUTEX_OP_OPARG_SHIFT != 0;
        let arg = if shift {
            1u32 << (self.oparg as u32 & 31)
        } else {
            self.oparg as u32
        };
        Some(match self.op & 7 {
            FUTEX_OP_SET => arg,
            FUTEX_OP_ADD => old.wrapping_add(arg),
            FUTEX_OP_OR => old | arg,
            FUTEX_OP_ANDN => old & !arg,
            FUTEX_OP_XOR => old ^ arg,
            _ => return None,
        })
    }
    /// Whether to also wake waiters on the second futex (`old` = its value before the op),
    /// or `None` for an unknown comparison (`ENOSYS`).
    pub const fn compare(&self, old: u32) -> Option<bool> {
        let (o, c) = (old as i32, self.cmparg);
        Some(match self.cmp {
            FUTEX_OP_CMP_EQ => o == c,
            FUTEX_OP_CMP_NE => o != c,
            FUTEX_OP_CMP_LT => o < c,
            FUTEX_OP_CMP_LE => o <= c,
            FUTEX_OP_CMP_GT => o > c,
            FUTEX_OP_CMP_GE => o >= c,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_op() {
        // glibc's FUTEX_OP_CLEAR_WAKE_IF_GT_ONE = ((4 << 24) | 1) with op SET 0.
        let w = WakeOp::decode((FUTEX_OP_SET << 28) | (FUTEX_OP_CMP_GT << 24) | 1);
        assert_eq!(
            w,
            WakeOp {
                op: 0,
                cmp: 4,
                oparg: 0,
                cmparg: 1
            }
        );
        assert_eq!(w.apply(5), Some(0));
        assert_eq!(w.compare(2), Some(true));
        assert_eq!(w.compare(1), Some(false));
        let v = WakeOp::encode(FUTEX_OP_ADD, -1, FUTEX_OP_CMP_LT, -5);
        let d = WakeOp::decode(v);
        assert_eq!((d.oparg, d.cmparg), (-1, -5));
        assert_eq!(d.apply(10), Some(9));
        let s = WakeOp::decode(WakeOp::encode(FUTEX_OP_OR | FUTEX_OP_OPARG_SHIFT, 4, 0, 0));
        assert_eq!(s.apply(1), Some(0x11));
        assert_eq!(WakeOp::decode(7 << 28).apply(0), None);
        assert_eq!(WakeOp::decode(7 << 24).compare(0), None);
        assert_eq!(
            FUTEX_WAIT_BITSET_PRIVATE & FUTEX_CMD_MASK,
            FUTEX_WAIT_BITSET
        );
    }

    #[test]
    fn robust_and_waitv() {
        let h = RobustListHead {
            next: 0x1000,
            futex_offset: -16,
            list_op_pending: 0,
        };
        let b = h.encode();
        assert_eq!(&b[8..16], &(-16i64).to_le_bytes());
        assert_eq!(RobustListHead::decode(&b), Some(h));
        assert_eq!(h.futex_addr(0x2000), 0x1ff0);
        let w = FutexWaitv {
            val: 1,
            uaddr: 0x3000,
            flags: FUTEX2_SIZE_U32 | FUTEX2_PRIVATE,
        };
        let mut wb = w.encode();
        assert_eq!(FutexWaitv::decode(&wb), Some(w));
        wb[20] = 1;
        assert_eq!(FutexWaitv::decode(&wb), None);
    }
}
