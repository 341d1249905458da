//! Which on-disk features this reader accepts, and [`Unsupported`]: how it names what it refuses.
//!
//! Only one incompatible feature is accepted: `filetype` (directory entries carry a file-type
//! byte), which every `mke2fs -t ext2` image has. Compatible features (a journal, `dir_index`,
//! `resize_inode`, extended attributes) leave the ext2 layout readable, and read-only compatible
//! ones (`sparse_super`, `large_file`) only matter to a writer.

use core::fmt;

use crate::inode::InodeNo;

/// `s_feature_incompat`: directory entries carry a file-type byte.
pub(crate) const INCOMPAT_FILETYPE: u32 = 0x2;

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
