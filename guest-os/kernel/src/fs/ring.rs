//! [`PageRing`]: a byte ring of 4 KiB pages, the buffer behind pipes and local stream sockets.
//!
//! Pages are taken from [`super::iobuf`]'s pool when data first reaches them and given back
//! when the ring goes: a fresh zeroed buffer would cost ~195 µs of ring-0 zeroing per 4 KiB
//! here. Data is copied once each way, straight between the caller's buffer and the pages.
//!
//! Owns: the ring's pages and positions. Callers keep their own locks and wake-ups.

use super::iobuf::{self, PAGE};
use super::{ReadBuf, WriteBuf};
use alloc::boxed::Box;
use alloc::vec::Vec;
use noa_linux_abi::errno::SysResult;

pub struct PageRing {
    pages: Vec<Option<Box<[u8]>>>,
    /// Position of the first unread byte (mod capacity).
    head: usize,
    len: usize,
}

impl PageRing {
    /// An empty ring of `capacity` bytes (rounded up to whole pages).
    pub fn new(capacity: usize) -> PageRing {
        let pages = capacity.div_ceil(PAGE).max(1);
        PageRing {
            pages: (0..pages).map(|_| None).collect(),
            head: 0,
            len: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.pages.len() * PAGE
    }

    /// Bytes buffered.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of room.
    pub fn free(&self) -> usize {
        self.capacity() - self.len
    }

    /// Copies up to `buf.len()` buffered bytes out, consuming them unless `peek`; returns how
    /// many.
    pub fn read_into(&mut self, buf: &mut ReadBuf<'_>, peek: bool) -> SysResult<usize> {
        let capacity = self.capacity();
        let want = self.len.min(buf.len());
        let mut done = 0;
        let mut head = self.head;
        while done < want {
            let position = head % capacity;
            let (index, in_page) = (position / PAGE, position % PAGE);
            let n = (PAGE - in_page).min(want - done);
            let Some(page) = self.pages[index].as_ref() else {
                break;
            };
            if let Err(e) = buf.put(done, &page[in_page..in_page + n]) {
                if done == 0 {
                    return Err(e);
                }
                break;
            }
            head = (head + n) % capacity;
            done += n;
        }
        if !peek {
            self.head = head;
            self.len -= done;
            if self.len == 0 {
                self.head = 0;
            }
        }
        Ok(done)
    }

    /// Copies up to `len` bytes from offset `at` of `buf` in; returns how many.
    pub fn write_from(&mut self, buf: &WriteBuf<'_>, at: usize, len: usize) -> SysResult<usize> {
        let capacity = self.capacity();
        let want = self.free().min(len);
        let mut done = 0;
        while done < want {
            let position = (self.head + self.len) % capacity;
            let (index, in_page) = (position / PAGE, position % PAGE);
            let n = (PAGE - in_page).min(want - done);
            let page = self.pages[index].get_or_insert_with(iobuf::take_page);
            if let Err(e) = buf.get(at + done, &mut page[in_page..in_page + n]) {
                if done == 0 {
                    return Err(e);
                }
                break;
            }
            self.len += n;
            done += n;
        }
        Ok(done)
    }
}

impl Drop for PageRing {
    fn drop(&mut self) {
        for page in self.pages.iter_mut() {
            if let Some(page) = page.take() {
                iobuf::give_page(page);
            }
        }
    }
}
