//! The directory walk every reader and writer of entries shares: [`Ext2::walk_dir`] visits the
//! entries of a directory, live or unused, block by block, each block validated from its start.
//!
//! Costs, since in ring 0 every instruction may be emulated: a block is copied into the caller's
//! buffer in as few device reads as the buffer allows (one per block when the buffer holds a
//! block; the reader passes a 4 KiB buffer on its stack, the writer its scratch block, so no scan
//! allocates). An entry costs a few dozen instructions, in one small loop (`walk_held`) whose
//! state stays in registers: its 8-byte header is read as one word and checked (`rec_len`,
//! `name_len`, the inode number), then the visitor's filter ([`EntryVisitor::wants`]) looks at
//! the header and, when the name length matches one it wants, the name's last 8 bytes as one
//! word ([`Header::name_tail`]); only the entries it passes are visited. Nothing else looks at
//! a name's bytes: names are checked where they leave the crate ([`Ext2::read_dir_from`] and
//! friends, through [`crate::name::is_entry_name`]), and a lookup compares names with one it
//! checked, so an entry it finds has a good name. Linux ext2 checks entry headers the same way.
//!
//! Measured in the guest (emulated ring-0 instructions per entry scanned): about 37 for a
//! lookup and 50 for a change's search, where the first version spent about 250 (a per-byte
//! name check, a heap buffer per scan, a call per entry).

use core::ops::ControlFlow;

use crate::NAME_MAX;
use crate::corrupt::{Corrupt, DirEntryProblem};
use crate::device::BlockDevice;
use crate::error::Result;
use crate::fs::Ext2;
use crate::inode::{FileType, Inode};

/// The header and longest name of an entry: a buffer at least this long holds any entry's.
pub(crate) const ENTRY_MAX: usize = 8 + NAME_MAX;

/// `prev_at` before a block's first entry.
const NO_ENTRY: usize = usize::MAX;

/// The `rec_len` of an entry whose stored one failed the quick check (at least 8, a multiple
/// of 4, inside the `left` bytes of the block): a whole 64 KiB block's record, stored as 0 or
/// 65535 because 65536 does not fit in 16 bits (as Linux stores it), or the problem.
#[cold]
fn whole_block_record(rec_len: usize, left: usize) -> core::result::Result<usize, DirEntryProblem> {
    if left == 1 << 16 && (rec_len == 0 || rec_len == 0xffff) {
        return Ok(1 << 16);
    }
    if rec_len < 8 || !rec_len.is_multiple_of(4) {
        return Err(DirEntryProblem::BadRecLen { rec_len });
    }
    Err(DirEntryProblem::RecLenPastEnd { rec_len })
}

/// One entry, its header checked; `ino` 0 marks an unused record.
pub(crate) struct RawEntry<'b> {
    pub(crate) ino: u32,
    pub(crate) rec_len: usize,
    /// Not checked: see [`crate::name::is_entry_name`].
    pub(crate) name: &'b [u8],
    /// The type byte after `name_len` (the file type with the `filetype` feature).
    pub(crate) type_code: u8,
}

/// Where an entry is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EntryPlace {
    /// Byte offset of the entry in the directory.
    pub(crate) offset: u64,
    /// Byte offset of the entry on the device.
    pub(crate) device: u64,
    /// The entry before it in its block: (device offset, `rec_len`).
    pub(crate) prev: Option<(u64, usize)>,
}

/// An entry's checked header, for a visitor's filter.
pub(crate) struct Header<'b> {
    /// The buffered block bytes the entry is in, from `pos` on (its header and name at least).
    held: &'b [u8],
    pos: usize,
    /// 0: unused.
    pub(crate) ino: u32,
    pub(crate) name_len: usize,
    pub(crate) rec_len: usize,
}

impl Header<'_> {
    /// The entry's name's last 8 bytes as a word (see [`name_tail`]), read in place: with the
    /// length, a cheap test that an entry may have a name.
    #[inline(always)]
    pub(crate) fn name_tail(&self) -> u64 {
        // The 8 bytes that end where the name does: header bytes first for a short name.
        let end = self.pos + 8 + self.name_len;
        let word = self
            .held
            .get(end - 8..end)
            .and_then(|w| w.first_chunk::<8>())
            .map_or(0, |w| u64::from_le_bytes(*w));
        word.checked_shr(8 * (8 - self.name_len.min(8)) as u32)
            .unwrap_or(0)
    }

    /// The bytes of the record that its entry does not use: all of an unused one's.
    #[inline(always)]
    pub(crate) fn slack(&self) -> usize {
        let used = if self.ino == 0 {
            0
        } else {
            entry_len(self.name_len)
        };
        self.rec_len.saturating_sub(used)
    }
}

/// The last 8 bytes of `name` as a little-endian word; a shorter name's bytes from the low end.
/// Equal names have equal tails ([`Header::name_tail`] gives an entry's).
pub(crate) fn name_tail(name: &[u8]) -> u64 {
    match name.last_chunk::<8>() {
        Some(word) => u64::from_le_bytes(*word),
        None => name
            .iter()
            .rev()
            .fold(0, |word, &byte| word << 8 | u64::from(byte)),
    }
}

/// Bytes an entry with a `name_len`-byte name needs: the 8-byte header and the name, rounded up
/// to 4.
pub(crate) fn entry_len(name_len: usize) -> usize {
    (8 + name_len + 3) & !3
}

/// What a directory walk does with entries: a cheap filter run on every entry's header, and the
/// visit of the entries it passes.
pub(crate) trait EntryVisitor {
    /// Whether [`Self::visit`] wants the entry with this header. Runs for every entry: a few
    /// compares.
    fn wants(&self, header: &Header<'_>) -> bool;

    /// Takes a wanted entry in; `Break` ends the walk.
    fn visit(&mut self, place: &EntryPlace, entry: &RawEntry<'_>) -> ControlFlow<()>;
}

/// A visitor from two closures: the filter and the visit.
pub(crate) struct Visitor<W, F> {
    pub(crate) wants: W,
    pub(crate) visit: F,
}

impl<W, F> EntryVisitor for Visitor<W, F>
where
    W: Fn(&Header<'_>) -> bool,
    F: FnMut(&EntryPlace, &RawEntry<'_>) -> ControlFlow<()>,
{
    #[inline(always)]
    fn wants(&self, header: &Header<'_>) -> bool {
        (self.wants)(header)
    }

    #[inline(always)]
    fn visit(&mut self, place: &EntryPlace, entry: &RawEntry<'_>) -> ControlFlow<()> {
        (self.visit)(place, entry)
    }
}

/// A visitor that wants every entry, live or unused.
pub(crate) fn every_entry<F>(visit: F) -> Visitor<impl Fn(&Header<'_>) -> bool, F>
where
    F: FnMut(&EntryPlace, &RawEntry<'_>) -> ControlFlow<()>,
{
    Visitor {
        wants: |_: &Header<'_>| true,
        visit,
    }
}

/// Where the bytes a walk holds are: the block at `offset` in the directory, `device` on the
/// device, from byte `base` of the block on.
struct HeldPlace {
    offset: u64,
    device: u64,
    base: usize,
    /// Where the entry before the first held one starts, from `base` (wrapping below it);
    /// NO_ENTRY when there is none. Entries start at multiples of 4, so none starts there.
    prev: usize,
}

/// How [`walk_held`] ended.
enum Walked {
    /// At the entry at `pos`, the first past `stop`; the entry before it is at `prev`
    /// (NO_ENTRY if none).
    To { pos: usize, prev: usize },
    /// The visitor stopped the walk.
    Stopped,
    /// The entry at `pos` is corrupt.
    Bad {
        pos: usize,
        problem: DirEntryProblem,
    },
}

/// Walks the entries of `held`, the first of the `left` bytes of the block from `place.base` on
/// (all of them, or at least [`ENTRY_MAX`]), checking each header against the block and the inode count and asking
/// `visit`'s filter. It stops at the first entry that starts too late for its header (whole) or
/// its header and longest name (not whole) to be held. Apart from the device, the hot loop of
/// every directory scan: a function of its own, so that its state stays in registers (inlined
/// into the block loop, it spills to the stack).
#[inline(never)]
fn walk_held<V: EntryVisitor>(
    held: &[u8],
    left: usize,
    inodes: u32,
    place: &HeldPlace,
    visit: &mut V,
) -> Walked {
    let end = held.len();
    let whole = end == left;
    // Entries that start before `stop` have their header in `held`, and their name too when
    // `held` is not the whole rest of the block (ENTRY_MAX bytes; the buffer holds at least
    // that, so `stop` is at least 1 and every pass moves on).
    let stop = if whole {
        end.saturating_sub(7)
    } else {
        end.saturating_sub(ENTRY_MAX - 1).max(1)
    };
    let (mut pos, mut prev) = (0, place.prev);
    // rec_len is at least 8: the walk moves forward.
    while pos < stop {
        let Some(header) = held.get(pos..pos + 8).and_then(|h| h.first_chunk::<8>()) else {
            let problem = DirEntryProblem::CutOff;
            return Walked::Bad { pos, problem };
        };
        let header = u64::from_le_bytes(*header);
        let ino = header as u32;
        let mut rec_len = usize::from((header >> 32) as u16);
        // Linux ext2 uses an 8-bit name length; the next byte is the file type (revision 1
        // with `filetype`) or 0.
        let name_len = usize::from((header >> 48) as u8);
        if rec_len < 8 || !rec_len.is_multiple_of(4) || pos + rec_len > left {
            match whole_block_record(rec_len, left - pos) {
                Ok(whole) => rec_len = whole,
                Err(problem) => return Walked::Bad { pos, problem },
            }
        }
        if 8 + name_len > rec_len {
            let problem = DirEntryProblem::NameLen { name_len, rec_len };
            return Walked::Bad { pos, problem };
        }
        if ino > inodes {
            let problem = DirEntryProblem::InodeOutOfRange { ino };
            return Walked::Bad { pos, problem };
        }
        let head = Header {
            held,
            pos,
            ino,
            name_len,
            rec_len,
        };
        if visit.wants(&head)
            && visit_held(held, pos, prev, header, rec_len, place, visit).is_break()
        {
            return Walked::Stopped;
        }
        prev = pos;
        pos += rec_len;
    }
    if whole && pos < end {
        let problem = DirEntryProblem::CutOff;
        return Walked::Bad { pos, problem };
    }
    Walked::To { pos, prev }
}

/// Hands the entry at `pos` of `held` (its header checked) to `visit`, with its place.
#[inline(never)]
fn visit_held<V: EntryVisitor>(
    held: &[u8],
    pos: usize,
    prev: usize,
    header: u64,
    rec_len: usize,
    place: &HeldPlace,
    visit: &mut V,
) -> ControlFlow<()> {
    let name_len = usize::from((header >> 48) as u8);
    let at = place.base + pos;
    let entry = RawEntry {
        ino: header as u32,
        rec_len,
        name: held.get(pos + 8..pos + 8 + name_len).unwrap_or_default(),
        type_code: (header >> 56) as u8,
    };
    let entry_place = EntryPlace {
        offset: place.offset + at as u64,
        device: place.device + at as u64,
        prev: (prev != NO_ENTRY).then(|| {
            let prev_at = place.base.wrapping_add(prev);
            (place.device + prev_at as u64, at - prev_at)
        }),
    };
    visit.visit(&entry_place, &entry)
}

impl<D: BlockDevice> Ext2<D> {
    /// Visits every entry, live or unused, of the blocks of `dir` from the one holding byte
    /// `from`, through `buf` (at least [`ENTRY_MAX`] bytes; a block's worth reads each block
    /// once), until `visit` breaks.
    ///
    /// Generic over the visitor, so that each caller's loop is one function with the filter
    /// inlined: a call per entry costs more than the entry's own checks.
    pub(crate) fn walk_dir<V: EntryVisitor>(
        &self,
        dir: &Inode,
        from: u64,
        buf: &mut [u8],
        visit: &mut V,
    ) -> Result<()> {
        let size = self.check_dir(dir)?;
        let bs = self.geo.block_size;
        let (mut block, end) = (from / bs, size / bs);
        // At most MAX_DIR_BYTES / 1024 blocks; each run covers at least one.
        while block < end {
            let run = self.map_run(dir, block, end - block)?;
            // A hole in a directory holds no entries.
            if let Some(start) = run.start {
                for i in 0..run.blocks {
                    let at = ((block + i) * bs, (start + i) * bs);
                    if self.walk_block(dir, at, buf, visit)?.is_break() {
                        return Ok(());
                    }
                }
            }
            block += run.blocks;
        }
        Ok(())
    }

    /// Visits the entries of the directory block at `(directory offset, device offset)`.
    ///
    /// `buf` holds the block's bytes from `base` on (all of them when it is a block long), and
    /// [`walk_held`] walks the entries that start early enough in it for their header and name
    /// to be held; the walk reads on from the next entry. With a whole block in `buf` that is
    /// one read and one walk.
    #[inline(always)]
    fn walk_block<V: EntryVisitor>(
        &self,
        dir: &Inode,
        (offset, device): (u64, u64),
        buf: &mut [u8],
        visit: &mut V,
    ) -> Result<ControlFlow<()>> {
        let block_len = self.geo.block_len();
        let mut place = HeldPlace {
            offset,
            device,
            base: 0,
            prev: NO_ENTRY,
        };
        // One pass per read: each moves `base` on by at least one entry.
        while place.base < block_len {
            let end = block_len - place.base;
            let held = buf.get_mut(..buf.len().min(end)).unwrap_or_default();
            self.disk.read(device + place.base as u64, held)?;
            let held: &[u8] = held;
            match walk_held(held, end, self.geo.inodes_count, &place, visit) {
                Walked::To { pos, prev } => {
                    place.prev = prev.wrapping_sub(pos);
                    place.base += pos;
                }
                Walked::Stopped => return Ok(ControlFlow::Break(())),
                Walked::Bad { pos, problem } => {
                    return Err(Corrupt::DirEntry {
                        dir: dir.ino(),
                        offset: offset + (place.base + pos) as u64,
                        problem,
                    }
                    .into());
                }
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// The file type an entry's type byte records: [`FileType::Unknown`] without `filetype`.
    pub(crate) fn entry_file_type(&self, type_code: u8) -> FileType {
        if self.geo.dir_file_type {
            FileType::from_dir_entry(type_code)
        } else {
            FileType::Unknown
        }
    }
}
