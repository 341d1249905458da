//! BSD file locks (`flock(2)`): shared or exclusive, whole-file, advisory, held by an open file
//! description ([`OpenFile`]) — every descriptor dup'd or inherited from one open shares its
//! lock, and the lock goes when the last of them closes ([`release_all`] from `OpenFile`'s
//! drop) or at `LOCK_UN`.
//!
//! One table for the machine, keyed by inode identity; an entry exists only while some file
//! holds a lock, so the table stays as small as the number of locked files. Waiters sleep on one
//! wait queue and re-check (locks are rare and short; a queue per inode would buy nothing).
//! Converting a held lock (shared ↔ exclusive) drops it first and then waits, as Linux does, so
//! two converting holders cannot deadlock each other.
//!
//! Owns: the lock table.

use super::{InodeId, OpenFile};
use crate::task::wait::WaitQueue;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use noa_linux_abi::errno::{Errno, SysResult};
use spin::Mutex;

/// Who holds a lock: the open file description's address (unique while it lives, and every
/// lock is released before it is freed).
type Owner = usize;

#[derive(Default)]
struct Held {
    exclusive: Option<Owner>,
    shared: Vec<Owner>,
}

static LOCKS: Mutex<BTreeMap<InodeId, Held>> = Mutex::new(BTreeMap::new());
static RELEASED: WaitQueue = WaitQueue::new();

/// What `flock` asks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Shared,
    Exclusive,
    Unlock,
}

fn owner(file: &OpenFile) -> Owner {
    file as *const OpenFile as usize
}

/// Takes, converts or drops `file`'s lock; with `nonblock`, EWOULDBLOCK instead of waiting. A
/// wait is interrupted by signals (EINTR).
pub fn flock(file: &OpenFile, request: Request, nonblock: bool) -> SysResult<()> {
    let id = file.inode().id();
    let me = owner(file);
    let had_lock = unlock(id, me);
    if request == Request::Unlock {
        return Ok(());
    }
    let try_take = || -> Option<()> {
        let mut locks = LOCKS.lock();
        let held = locks.entry(id).or_default();
        let free = match request {
            Request::Shared => held.exclusive.is_none(),
            _ => held.exclusive.is_none() && held.shared.is_empty(),
        };
        if !free {
            if held.exclusive.is_none() && held.shared.is_empty() {
                locks.remove(&id);
            }
            return None;
        }
        match request {
            Request::Shared => held.shared.push(me),
            _ => held.exclusive = Some(me),
        }
        Some(())
    };
    if had_lock {
        RELEASED.wake_all();
    }
    if try_take().is_some() {
        return Ok(());
    }
    if nonblock {
        return Err(Errno::EWOULDBLOCK);
    }
    RELEASED.wait_until(try_take)
}

/// Drops `me`'s lock on `id`; whether it held one.
fn unlock(id: InodeId, me: Owner) -> bool {
    let mut locks = LOCKS.lock();
    let Some(held) = locks.get_mut(&id) else {
        return false;
    };
    let mut found = false;
    if held.exclusive == Some(me) {
        held.exclusive = None;
        found = true;
    }
    if let Some(at) = held.shared.iter().position(|&o| o == me) {
        held.shared.swap_remove(at);
        found = true;
    }
    if held.exclusive.is_none() && held.shared.is_empty() {
        locks.remove(&id);
    }
    found
}

/// The open file description is going away: its lock, if any, goes with it.
pub fn release_all(file: &OpenFile) {
    // Most files never lock: skip the wake-up then.
    if unlock(file.inode().id(), owner(file)) {
        RELEASED.wake_all();
    }
}
