//! Which on-disk features this crate accepts, and [`Unsupported`]: how it names what it refuses.
//!
//! Only one incompatible feature is accepted: `filetype` (directory entries carry a file-type
//! byte), which every `mke2fs -t ext2` image has. Compatible features (a journal, `dir_index`,
//! `resize_inode`, extended attributes) leave the ext2 layout readable and writable (a writer
//! that does not know them must leave them alone, which we do: we never touch the journal or the
//! reserved GDT blocks, and clear a directory's htree flag when we change it, as Linux ext2
//! does). Read-only compatible features only matter to a writer: we write `sparse_super` and
//! `large_file` file systems (setting `large_file` when a file passes 2 GiB) and refuse to write
//! any other (`huge_file`, checksums, `dir_nlink`, …), which [`Ext2::open_rw`](crate::Ext2::open_rw)
//! reports as [`Unsupported::RoCompat`].

use core::fmt;

use crate::inode::InodeNo;

/// `s_feature_incompat`: directory entries carry a file-type byte.
pub(crate) const INCOMPAT_FILETYPE: u32 = 0x2;

/// `s_feature_ro_compat`: backup superblocks only in groups 0, 1 and powers of 3, 5 and 7.
pub(crate) const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
/// `s_feature_ro_compat`: regular files may be 2 GiB or larger (`i_size_high` is used).
pub(crate) const RO_COMPAT_LARGE_FILE: u32 = 0x2;
/// The read-only compatible features a writer may see.
pub(crate) const RO_COMPAT_WRITABLE: u32 = RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE;
/// `s_feature_compat`: some groups reserve blocks after the group descriptors for growth.
pub(crate) const COMPAT_RESIZE_INODE: u32 = 0x10;

/// Inode flag: the directory has an htree index (`dir_index`), which ext2 writers clear.
pub(crate) const EXT2_INDEX_FL: u32 = 0x1000;

/// Inode flags meaning the block map is not an ext2 block map (ext4 extents, inline data).
pub(crate) const EXT4_EXTENTS_FL: u32 = 0x0008_0000;
pub(crate) const EXT4_INLINE_DATA_FL: u32 = 0x1000_0000;

/// Incompatible features we refuse, by name, and whether they mean "this is ext4".
const INCOMPAT_FEATURES: &[(u32, &str, bool)] = &[
    (0x0001, "compression", false),
    (0x0004, "needs_recovery", false),
    (0x0008, "journal_dev", false),
    (0x0010, "meta_bg", false),
    (0x0040, "extents", true),
    (0x0080, "64bit", true),
    (0x0100, "mmp", true),
    (0x0200, "flex_bg", true),
    (0x0400, "ea_inode", true),
    (0x1000, "dirdata", true),
    (0x2000, "metadata_csum_seed", true),
    (0x4000, "large_dir", true),
    (0x8000, "inline_data", true),
    (0x1_0000, "encrypt", true),
    (0x2_0000, "casefold", true),
];

/// A file system this reader does not handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unsupported {
    /// A superblock revision other than 0 or 1.
    Revision(u32),
    /// Incompatible features other than `filetype` (the bits we refuse).
    Incompat(u32),
    /// More block groups than the descriptor cache holds.
    TooManyGroups { groups: u64, max: u64 },
    /// An inode whose flags say its blocks are not an ext2 block map.
    InodeFlags { ino: InodeNo, flags: u32 },
    /// Read-only compatible features a writer does not understand (the bits), so the file system
    /// can be read but not written.
    RoCompat(u32),
    /// Groups larger than the 16-bit free counts of a group descriptor can count, so the file
    /// system can be read but not written.
    GroupTooLarge {
        blocks_per_group: u64,
        inodes_per_group: u64,
    },
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Unsupported::Revision(revision) => write!(
                f,
                "superblock revision {revision} (ext2 has revisions 0 and 1)"
            ),
            Unsupported::Incompat(bits) => describe_incompat(f, bits),
            Unsupported::TooManyGroups { groups, max } => write!(
                f,
                "{groups} block groups, more than the {max} this reader handles"
            ),
            Unsupported::InodeFlags { ino, flags } => write!(
                f,
                "inode {ino} uses ext4 extents or inline data (flags {flags:#x}); only ext2 \
                 block maps are supported"
            ),
            Unsupported::RoCompat(bits) => write!(
                f,
                "read-only compatible features {bits:#x} (beyond sparse_super and large_file) \
                 that this writer does not understand; the file system can only be read"
            ),
            Unsupported::GroupTooLarge {
                blocks_per_group,
                inodes_per_group,
            } => write!(
                f,
                "groups of {blocks_per_group} blocks and {inodes_per_group} inodes, more than \
                 the 16-bit free counts of a group descriptor hold; the file system can only be \
                 read"
            ),
        }
    }
}

/// Explains a set of incompatible features we do not support, naming ext4 where it applies.
fn describe_incompat(f: &mut fmt::Formatter<'_>, bits: u32) -> fmt::Result {
    let known = INCOMPAT_FEATURES
        .iter()
        .filter(|(bit, _, _)| bits & bit != 0)
        .fold(0, |acc, (bit, _, _)| acc | bit);
    let ext4 = INCOMPAT_FEATURES
        .iter()
        .any(|&(bit, _, is_ext4)| is_ext4 && bits & bit != 0);
    if ext4 {
        f.write_str("this is an ext4 file system (incompatible features: ")?;
    } else {
        f.write_str("incompatible features this reader does not understand: ")?;
    }
    let mut sep = "";
    for (_, name, _) in INCOMPAT_FEATURES
        .iter()
        .filter(|(bit, _, _)| bits & bit != 0)
    {
        write!(f, "{sep}{name}")?;
        sep = ", ";
    }
    if bits & !known != 0 {
        write!(f, "{sep}unknown {:#x}", bits & !known)?;
    }
    if ext4 {
        f.write_str(")")?;
    }
    f.write_str("; only ext2 is supported, make the image with `mke2fs -t ext2`")
}
