//! `/proc/<pid>/maps`: a line per mapping, in Linux's exact format —
//! `start-end perms offset major:minor inode`, padded to column 73, then the name: the file's
//! path, `[heap]` for the brk area, `[stack]` for the main stack, `/dev/zero (deleted)` for
//! shared anonymous memory, nothing for other anonymous memory (the line then ends in a space).
//!
//! Linux merges neighbouring VMAs that agree; this kernel keeps them apart (each brk growth is
//! one), so neighbours that agree in everything shown are printed as one line, as Linux would.

use super::process;
use super::text::TextBuf;
use crate::mm::{Backing, STACK_TOP, Vma, page_align_up};
use alloc::vec::Vec;
use noa_linux_abi::errno::SysResult;
use noa_linux_abi::mm::{PROT_EXEC, PROT_READ, PROT_WRITE};
use noa_linux_abi::stat::{major, minor};

/// Where the name starts: Linux pads the header to 72 columns, then writes a space.
const NAME_COLUMN: usize = 73;

#[derive(PartialEq, Eq)]
enum Label {
    None,
    Heap,
    Stack,
    SharedAnon,
    File,
}

pub fn generate(pid: u32) -> SysResult<Vec<u8>> {
    let process = process(pid)?;
    let mm = process.mm();
    let (brk_start, brk) = mm.brk_range();
    let heap = (
        page_align_up(brk_start).unwrap_or(brk_start),
        page_align_up(brk).unwrap_or(brk),
    );
    let vmas = mm.vmas();
    let mut out = TextBuf::with_capacity(vmas.len() * 100);
    let mut at = 0;
    while let Some(first) = vmas.get(at) {
        let label = label(first, heap);
        let mut end = first.end;
        let mut next = at + 1;
        while let Some(vma) = vmas.get(next) {
            if !vmas[next - 1].continues(vma) || self::label(vma, heap) != label {
                break;
            }
            end = vma.end;
            next += 1;
        }
        write_line(&mut out, first, end, &label);
        at = next;
    }
    Ok(out.into_bytes())
}

fn label(vma: &Vma, (heap_start, heap_end): (u64, u64)) -> Label {
    match vma.backing {
        Backing::File { .. } => Label::File,
        Backing::Anon if vma.shared => Label::SharedAnon,
        // As Linux: the VMA the brk heap lies in (it may have merged with the bss below it).
        Backing::Anon if vma.start < heap_end && heap_start < vma.end => Label::Heap,
        Backing::Anon if vma.end == STACK_TOP => Label::Stack,
        Backing::Anon => Label::None,
    }
}

fn write_line(out: &mut TextBuf, vma: &Vma, end: u64, label: &Label) {
    let line_start = out.len();
    let flag = |bit: u32, c: u8| if vma.prot & bit != 0 { c } else { b'-' };
    let (offset, (dev, ino)) = match &vma.backing {
        Backing::File { file, offset } => (*offset, file.inode().id()),
        Backing::Anon => (0, (0, 0)),
    };
    out.hex(vma.start, 8).byte(b'-').hex(end, 8).byte(b' ');
    out.byte(flag(PROT_READ, b'r'))
        .byte(flag(PROT_WRITE, b'w'))
        .byte(flag(PROT_EXEC, b'x'))
        .byte(if vma.shared { b's' } else { b'p' });
    out.byte(b' ').hex(offset, 8).byte(b' ');
    out.hex(u64::from(major(dev)), 2)
        .byte(b':')
        .hex(u64::from(minor(dev)), 2);
    out.byte(b' ').num(ino).byte(b' ');
    let name: &[u8] = match (label, &vma.backing) {
        (Label::File, Backing::File { file, .. }) => file.opened_path(),
        (Label::Heap, _) => b"[heap]",
        (Label::Stack, _) => b"[stack]",
        (Label::SharedAnon, _) => b"/dev/zero (deleted)",
        _ => b"",
    };
    if !name.is_empty() {
        let used = out.len() - line_start;
        out.spaces(NAME_COLUMN.saturating_sub(used)).bytes(name);
    }
    out.byte(b'\n');
}
