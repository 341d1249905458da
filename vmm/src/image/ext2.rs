//! A small, read-only ext2 reader for the guest disk image.
//!
//! The guest disk `guest.img` is a plain ext2 file system (`mke2fs -t ext2 -d DIR`). Before the
//! guest runs, the VMM needs two files out of it: `/boot/kernel` (the ELF it loads) and
//! `/boot/cmdline`. This module owns exactly that: open an image, look up an absolute path from the
//! root directory and read a whole regular file. It never writes, never follows symlinks and never
//! reads the whole image into memory: every read is a bounds-checked `read_exact_at` on the file.
//!
//! The image is hostile input. Every field we use is validated before it steers a read or an
//! allocation: superblock magic, revision, features, block size (1024..=65536), block and inode
//! counts, the group descriptor table and inode table bounds, inode numbers and size, block
//! pointers, directory entry `rec_len`/`name_len`, and file and directory sizes. Apart from the
//! file the caller asked for, whose size is capped by the caller's `max_len`, nothing allocates
//! more than a few blocks. Loops cannot hang us: the block map has a fixed depth (direct, single,
//! double, triple indirect) and a walk stops after the file's own block count, and a path lookup
//! does one directory scan per path component (`.` and `..` are refused), so a directory that
//! points back at itself is harmless.
//!
//! Why our own (crates checked with `cargo info`): `ext2` 0.1.1 is a read-write driver that calls
//! itself early-stage ("use with caution"), transmutes with `unsafe` and has about a hundred
//! `unwrap`/`expect`/`panic!` sites. `ext4-view` 1.0.0 is the serious candidate: read-only,
//! `#![forbid(unsafe_code)]`, reads ext2/3/4, and aims never to panic or loop on bad input. We
//! still wrote this because `ext4-view` is about 10k lines that mostly serve ext4 (extents, htree,
//! journal, checksums), attack surface we do not need, and its `Ext4::read` follows symlinks and
//! allocates whatever size the inode claims (a caller has to check `symlink_metadata` first). This
//! reader is a few hundred lines and accepts only what `mke2fs -t ext2` produces (a clean ext3
//! reads too: its journal is a compatible feature).
//!
//! Layout reference: <https://www.nongnu.org/ext2-doc/ext2.html>.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The superblock always lives at byte 1024, whatever the block size.
const SUPERBLOCK_OFFSET: u64 = 1024;
const SUPERBLOCK_SIZE: usize = 1024;
const EXT2_MAGIC: u16 = 0xef53;
const ROOT_INODE: u32 = 2;
/// Size of one ext2 group descriptor (64-byte descriptors come with the ext4 `64bit` feature).
const GROUP_DESC_SIZE: u64 = 32;
/// The part of an inode we read; every inode is at least this big.
const INODE_CORE_SIZE: usize = 128;
/// `i_block` holds 12 direct pointers, then single, double and triple indirect pointers.
const DIRECT_BLOCKS: usize = 12;
const BLOCK_POINTERS: usize = 15;
/// The largest directory we scan. Directories in a boot image hold a handful of entries; the cap
/// bounds the work a hostile directory size can cause (one block read per block).
const MAX_DIR_BYTES: u64 = 32 << 20;
/// The only incompatible feature ext2 images need: directory entries carry a file-type byte.
const INCOMPAT_FILETYPE: u32 = 0x2;

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

// Inode mode file types.
const S_IFMT: u16 = 0xf000;
const S_IFREG: u16 = 0x8000;
const S_IFDIR: u16 = 0x4000;
const S_IFLNK: u16 = 0xa000;

// Inode flags that mean the block map is not an ext2 block map.
const EXT4_EXTENTS_FL: u32 = 0x0008_0000;
const EXT4_INLINE_DATA_FL: u32 = 0x1000_0000;

/// Why reading the guest image failed. Each message is one line that names the image first, so it
/// reads well after a `vmm: ` prefix.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{}: cannot open disk image: {error}", .image.display())]
    Open { image: PathBuf, error: io::Error },
    #[error("{}: I/O error reading {len} bytes at byte {offset}: {error}", .image.display())]
    Io {
        image: PathBuf,
        offset: u64,
        len: usize,
        error: io::Error,
    },
    #[error("{}: image is empty (0 bytes)", .image.display())]
    Empty { image: PathBuf },
    #[error("{}: image is too small to be an ext2 file system ({len} bytes)", .image.display())]
    TooSmall { image: PathBuf, len: u64 },
    #[error("{}: image is truncated: {detail}", .image.display())]
    Truncated { image: PathBuf, detail: String },
    #[error(
        "{}: not an ext2 file system (bad superblock magic {magic:#06x}, expected 0xef53)",
        .image.display()
    )]
    NotExt2 { image: PathBuf, magic: u16 },
    #[error("{}: unsupported file system: {detail}", .image.display())]
    Unsupported { image: PathBuf, detail: String },
    #[error("{}: corrupt ext2 file system: {detail}", .image.display())]
    Corrupt { image: PathBuf, detail: String },
    #[error("{}: {file}: bad path: {detail}", .image.display())]
    BadPath {
        image: PathBuf,
        file: String,
        detail: &'static str,
    },
    #[error("{}: {file}: no such file in the image", .image.display())]
    NotFound { image: PathBuf, file: String },
    #[error("{}: {file}: {parent} is not a directory", .image.display())]
    NotADirectory {
        image: PathBuf,
        file: String,
        parent: String,
    },
    #[error("{}: {file}: not a regular file (it is a {kind})", .image.display())]
    NotRegularFile {
        image: PathBuf,
        file: String,
        kind: &'static str,
    },
    #[error(
        "{}: {file}: file is too large ({size} bytes, the limit is {max_len} bytes)",
        .image.display()
    )]
    TooLarge {
        image: PathBuf,
        file: String,
        size: u64,
        max_len: u64,
    },
}

/// An open ext2 image. Holds the file and the validated superblock geometry; reads go straight to
/// the file, so the image must not change while it is open.
#[derive(Debug)]
pub struct Ext2Image {
    file: File,
    path: PathBuf,
    geo: Geometry,
}

/// The superblock fields we use, all validated by `Geometry::parse`.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    block_size: u64,
    blocks_count: u64,
    inodes_count: u32,
    inodes_per_group: u64,
    inode_size: u64,
    /// Bytes the file system covers (`blocks_count * block_size`); no read goes past it.
    fs_bytes: u64,
    gdt_offset: u64,
    /// Blocks one group's inode table takes.
    inode_table_blocks: u64,
}

/// The fields of an inode we use.
#[derive(Debug, Clone)]
struct Inode {
    number: u32,
    mode: u16,
    size: u64,
    block: [u32; BLOCK_POINTERS],
}

/// What a block visitor wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Continue,
    Stop,
}

impl Ext2Image {
    /// Opens `path` and validates its superblock and root directory.
    pub fn open(path: &Path) -> Result<Self, ImageError> {
        let open_error = |error| ImageError::Open {
            image: path.to_owned(),
            error,
        };
        let file = File::open(path).map_err(open_error)?;
        let meta = file.metadata().map_err(open_error)?;
        if !meta.is_file() {
            let error = io::Error::new(io::ErrorKind::InvalidInput, "not a regular file");
            return Err(open_error(error));
        }
        let image_len = meta.len();
        if image_len == 0 {
            return Err(ImageError::Empty {
                image: path.to_owned(),
            });
        }
        if image_len < SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE as u64 {
            return Err(ImageError::TooSmall {
                image: path.to_owned(),
                len: image_len,
            });
        }
        let mut sb = [0u8; SUPERBLOCK_SIZE];
        file.read_exact_at(&mut sb, SUPERBLOCK_OFFSET)
            .map_err(|error| ImageError::Io {
                image: path.to_owned(),
                offset: SUPERBLOCK_OFFSET,
                len: SUPERBLOCK_SIZE,
                error,
            })?;
        let geo = Geometry::parse(path, &sb, image_len)?;
        let image = Ext2Image {
            file,
            path: path.to_owned(),
            geo,
        };
        // Check the root now so that a broken image fails at open, not at the first lookup.
        let root = image.read_inode(ROOT_INODE)?;
        if root.mode & S_IFMT != S_IFDIR {
            return Err(image.corrupt(format!("root inode {ROOT_INODE} is not a directory")));
        }
        Ok(image)
    }

    /// Reads a whole regular file; refuses files larger than `max_len` bytes with
    /// [`ImageError::TooLarge`]. `path` is absolute (`/boot/kernel`); symlinks are not followed.
    pub fn read_file(&self, path: &str, max_len: u64) -> Result<Vec<u8>, ImageError> {
        let inode = self.lookup(path)?;
        if inode.mode & S_IFMT != S_IFREG {
            return Err(ImageError::NotRegularFile {
                image: self.path.clone(),
                file: path.to_owned(),
                kind: kind_name(inode.mode),
            });
        }
        let too_large = || ImageError::TooLarge {
            image: self.path.clone(),
            file: path.to_owned(),
            size: inode.size,
            max_len,
        };
        if inode.size > max_len {
            return Err(too_large());
        }
        let len = usize::try_from(inode.size).map_err(|_| too_large())?;
        self.block_count(&inode, inode.size)?;
        // Holes stay zero: only allocated blocks are read into the buffer.
        let mut data = vec![0u8; len];
        self.read_data(&inode, &mut data)?;
        Ok(data)
    }

    /// Resolves an absolute path to its inode, one directory scan per component.
    fn lookup(&self, path: &str) -> Result<Inode, ImageError> {
        let components = self.split_path(path)?;
        let mut inode = self.read_inode(ROOT_INODE)?;
        let mut walked = String::new();
        for name in components {
            if inode.mode & S_IFMT != S_IFDIR {
                return Err(ImageError::NotADirectory {
                    image: self.path.clone(),
                    file: path.to_owned(),
                    parent: walked,
                });
            }
            let Some(number) = self.find_entry(&inode, name.as_bytes())? else {
                return Err(ImageError::NotFound {
                    image: self.path.clone(),
                    file: path.to_owned(),
                });
            };
            inode = self.read_inode(number)?;
            walked.push('/');
            walked.push_str(name);
        }
        Ok(inode)
    }

    /// Splits `/a/b` into `["a", "b"]`. Only absolute, normalized paths are accepted: refusing
    /// `.` and `..` keeps lookups a plain walk down the tree.
    fn split_path<'p>(&self, path: &'p str) -> Result<Vec<&'p str>, ImageError> {
        let bad = |detail| ImageError::BadPath {
            image: self.path.clone(),
            file: path.to_owned(),
            detail,
        };
        if !path.starts_with('/') {
            return Err(bad("not an absolute path"));
        }
        let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        if components.iter().any(|c| *c == "." || *c == "..") {
            return Err(bad("`.` and `..` are not allowed"));
        }
        if components.iter().any(|c| c.len() > 255) {
            return Err(bad("a component is longer than 255 bytes"));
        }
        Ok(components)
    }

    /// Looks `name` up in directory `dir`; returns its inode number.
    fn find_entry(&self, dir: &Inode, name: &[u8]) -> Result<Option<u32>, ImageError> {
        let bs = self.geo.block_size;
        if dir.size > MAX_DIR_BYTES {
            return Err(self.corrupt(format!(
                "directory inode {} is {} bytes, more than the {MAX_DIR_BYTES} this reader accepts",
                dir.number, dir.size
            )));
        }
        if !dir.size.is_multiple_of(bs) {
            return Err(self.corrupt(format!(
                "directory inode {} has size {}, not a multiple of the block size {bs}",
                dir.number, dir.size
            )));
        }
        let mut block_buf = vec![0u8; self.block_len()];
        let mut found = None;
        self.walk_blocks(dir, dir.size, &mut |block| {
            // A hole in a directory holds no entries.
            let Some(block) = block else {
                return Ok(Step::Continue);
            };
            self.read_at(block * bs, &mut block_buf)?;
            found = self.scan_dir_block(dir.number, &block_buf, name)?;
            Ok(if found.is_some() {
                Step::Stop
            } else {
                Step::Continue
            })
        })?;
        Ok(found)
    }

    /// Scans one directory block for `name`, validating every entry on the way.
    fn scan_dir_block(
        &self,
        dir: u32,
        block: &[u8],
        name: &[u8],
    ) -> Result<Option<u32>, ImageError> {
        let mut offset = 0;
        while offset < block.len() {
            let entry = parse_dir_entry(&block[offset..]).map_err(|why| {
                self.corrupt(format!(
                    "directory inode {dir}: entry at byte {offset} of a block {why}"
                ))
            })?;
            if entry.inode != 0 && entry.name == name {
                return Ok(Some(entry.inode));
            }
            // rec_len is at least 8, so the scan always moves forward.
            offset += entry.rec_len;
        }
        Ok(None)
    }

    /// Fills `out` (the file's size) from the inode's data blocks.
    fn read_data(&self, inode: &Inode, out: &mut [u8]) -> Result<(), ImageError> {
        let bs = self.geo.block_size;
        let len = out.len() as u64;
        let mut chunks = out.chunks_mut(self.block_len());
        self.walk_blocks(inode, len, &mut |block| {
            let Some(chunk) = chunks.next() else {
                return Ok(Step::Stop);
            };
            if let Some(block) = block {
                self.read_at(block * bs, chunk)?;
            }
            Ok(Step::Continue)
        })
    }

    /// Number of blocks that hold `bytes` bytes of `inode`, checked against what an ext2 block map
    /// can address (so a hostile size fails here, before anything is allocated for it).
    fn block_count(&self, inode: &Inode, bytes: u64) -> Result<u64, ImageError> {
        let count = bytes.div_ceil(self.geo.block_size);
        let per_block = self.geo.block_size / 4;
        let addressable = DIRECT_BLOCKS as u64 + per_block + per_block.pow(2) + per_block.pow(3);
        if count > addressable {
            return Err(self.corrupt(format!(
                "inode {} is {bytes} bytes, more than an ext2 block map can address",
                inode.number
            )));
        }
        Ok(count)
    }

    /// Calls `visit` for the logical blocks that hold the first `bytes` bytes of `inode`, in order,
    /// with each one's validated physical block number, or `None` for a hole (a zero pointer, at
    /// any level).
    fn walk_blocks(
        &self,
        inode: &Inode,
        bytes: u64,
        visit: &mut dyn FnMut(Option<u64>) -> Result<Step, ImageError>,
    ) -> Result<(), ImageError> {
        let count = self.block_count(inode, bytes)?;
        let mut walk = BlockWalk {
            image: self,
            inode: inode.number,
            left: count,
            visit,
        };
        for (index, &pointer) in inode.block.iter().enumerate() {
            // Slots 0..12 are direct (depth 0); slots 12, 13, 14 have depth 1, 2, 3.
            let depth = index.saturating_sub(DIRECT_BLOCKS - 1) as u32;
            if walk.node(pointer, depth)? == Step::Stop {
                break;
            }
        }
        Ok(())
    }

    /// Reads an indirect block as a list of block pointers.
    fn read_pointer_block(&self, inode: u32, pointer: u32) -> Result<Vec<u32>, ImageError> {
        let block = self.check_block(inode, pointer)?;
        let mut raw = vec![0u8; self.block_len()];
        self.read_at(block * self.geo.block_size, &mut raw)?;
        Ok(raw
            .chunks_exact(4)
            .map(|p| u32::from_le_bytes([p[0], p[1], p[2], p[3]]))
            .collect())
    }

    /// Checks that a nonzero block pointer of `inode` lies inside the file system.
    fn check_block(&self, inode: u32, pointer: u32) -> Result<u64, ImageError> {
        let block = u64::from(pointer);
        if block >= self.geo.blocks_count {
            return Err(self.corrupt(format!(
                "inode {inode}: block pointer {block} is outside the file system ({} blocks)",
                self.geo.blocks_count
            )));
        }
        Ok(block)
    }

    /// Reads and validates inode `number`.
    fn read_inode(&self, number: u32) -> Result<Inode, ImageError> {
        let offset = self.inode_offset(number)?;
        let mut raw = [0u8; INODE_CORE_SIZE];
        self.read_at(offset, &mut raw)?;
        let mode = le16(&raw, 0);
        let links = le16(&raw, 26);
        let flags = le32(&raw, 32);
        let mut block = [0u32; BLOCK_POINTERS];
        for (i, pointer) in block.iter_mut().enumerate() {
            *pointer = le32(&raw, 40 + 4 * i);
        }
        // For regular files, offset 108 holds the high 32 bits of the size (`large_file`); for
        // directories it is an ACL block and the size is 32 bits.
        let mut size = u64::from(le32(&raw, 4));
        if mode & S_IFMT == S_IFREG {
            size |= u64::from(le32(&raw, 108)) << 32;
        }
        if mode == 0 || links == 0 {
            return Err(self.corrupt(format!(
                "inode {number} is not in use, but a directory entry points at it"
            )));
        }
        if flags & (EXT4_EXTENTS_FL | EXT4_INLINE_DATA_FL) != 0 {
            return Err(self.unsupported(format!(
                "inode {number} uses ext4 extents or inline data (flags {flags:#x}); \
                 only ext2 block maps are supported"
            )));
        }
        Ok(Inode {
            number,
            mode,
            size,
            block,
        })
    }

    /// Byte offset of inode `number` in the image, after checking the number and its group's
    /// inode table.
    fn inode_offset(&self, number: u32) -> Result<u64, ImageError> {
        if number == 0 || number > self.geo.inodes_count {
            return Err(self.corrupt(format!(
                "inode number {number} is out of range (1..={})",
                self.geo.inodes_count
            )));
        }
        let index = u64::from(number - 1);
        let group = index / self.geo.inodes_per_group;
        let slot = index % self.geo.inodes_per_group;
        let table = self.inode_table(group)?;
        Ok(table * self.geo.block_size + slot * self.geo.inode_size)
    }

    /// First block of group `group`'s inode table, checked to lie inside the file system.
    fn inode_table(&self, group: u64) -> Result<u64, ImageError> {
        let mut desc = [0u8; GROUP_DESC_SIZE as usize];
        self.read_at(self.geo.gdt_offset + group * GROUP_DESC_SIZE, &mut desc)?;
        let table = u64::from(le32(&desc, 8));
        let end = table + self.geo.inode_table_blocks;
        if table == 0 || end > self.geo.blocks_count {
            return Err(self.corrupt(format!(
                "group {group}: inode table at block {table} ({} blocks) lies outside the \
                 file system ({} blocks)",
                self.geo.inode_table_blocks, self.geo.blocks_count
            )));
        }
        Ok(table)
    }

    /// The one place that reads the image: refuses anything outside the file system.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), ImageError> {
        let inside = offset
            .checked_add(buf.len() as u64)
            .is_some_and(|end| end <= self.geo.fs_bytes);
        if !inside {
            return Err(self.corrupt(format!(
                "a read of {} bytes at byte {offset} lies outside the file system ({} bytes)",
                buf.len(),
                self.geo.fs_bytes
            )));
        }
        self.file
            .read_exact_at(buf, offset)
            .map_err(|error| ImageError::Io {
                image: self.path.clone(),
                offset,
                len: buf.len(),
                error,
            })
    }

    /// Block size as a buffer length (at most 64 KiB, validated at open).
    fn block_len(&self) -> usize {
        self.geo.block_size as usize
    }

    fn corrupt(&self, detail: String) -> ImageError {
        ImageError::Corrupt {
            image: self.path.clone(),
            detail,
        }
    }

    fn unsupported(&self, detail: String) -> ImageError {
        ImageError::Unsupported {
            image: self.path.clone(),
            detail,
        }
    }
}

/// A depth-first walk of an inode's block map. The depth of each subtree is fixed by its slot in
/// `i_block`, so even a pointer cycle ends; `left` stops the walk at the file's last block.
struct BlockWalk<'a, 'v> {
    image: &'a Ext2Image,
    inode: u32,
    left: u64,
    visit: &'v mut dyn FnMut(Option<u64>) -> Result<Step, ImageError>,
}

impl BlockWalk<'_, '_> {
    /// Visits the subtree under `pointer`: a data block at depth 0, else an indirect block whose
    /// entries are subtrees of depth `depth - 1`.
    fn node(&mut self, pointer: u32, depth: u32) -> Result<Step, ImageError> {
        if self.left == 0 {
            return Ok(Step::Stop);
        }
        if depth == 0 {
            self.left -= 1;
            let block = match pointer {
                0 => None,
                p => Some(self.image.check_block(self.inode, p)?),
            };
            return (self.visit)(block);
        }
        // A zero pointer to an indirect block is a hole as big as its whole subtree.
        let children = match pointer {
            0 => vec![0; self.image.block_len() / 4],
            p => self.image.read_pointer_block(self.inode, p)?,
        };
        for child in children {
            if self.node(child, depth - 1)? == Step::Stop {
                return Ok(Step::Stop);
            }
        }
        Ok(Step::Continue)
    }
}

impl Geometry {
    /// Validates the superblock `sb` of an image `image_len` bytes long.
    fn parse(image: &Path, sb: &[u8; SUPERBLOCK_SIZE], image_len: u64) -> Result<Self, ImageError> {
        let revision = check_format(image, sb)?;
        let corrupt = |detail: String| ImageError::Corrupt {
            image: image.to_owned(),
            detail,
        };

        let log_block_size = le32(sb, 24);
        if log_block_size > 6 {
            return Err(corrupt(format!(
                "block size 1024 << {log_block_size} is out of range (1024..=65536)"
            )));
        }
        let block_size = 1024u64 << log_block_size;

        let blocks_count = u64::from(le32(sb, 4));
        let first_data_block = u64::from(le32(sb, 20));
        // The superblock at byte 1024 is in block 1 with 1 KiB blocks, in block 0 otherwise, and
        // the first data block is the superblock's block.
        let superblock_block = SUPERBLOCK_OFFSET / block_size;
        if first_data_block != superblock_block {
            return Err(corrupt(format!(
                "first data block is {first_data_block}, expected {superblock_block} for \
                 {block_size}-byte blocks"
            )));
        }
        if blocks_count <= first_data_block {
            return Err(corrupt(format!("block count {blocks_count} is too small")));
        }

        let fs_bytes = blocks_count * block_size;
        if fs_bytes > image_len {
            return Err(ImageError::Truncated {
                image: image.to_owned(),
                detail: format!(
                    "the superblock says the file system is {fs_bytes} bytes, \
                     but the image holds only {image_len}"
                ),
            });
        }

        // A group's block and inode bitmaps are one block each, which caps the group sizes.
        let bits_per_block = 8 * block_size;
        let blocks_per_group = u64::from(le32(sb, 32));
        if !(1..=bits_per_block).contains(&blocks_per_group) {
            return Err(corrupt(format!(
                "blocks per group {blocks_per_group} is out of range (1..={bits_per_block})"
            )));
        }
        let inodes_per_group = u64::from(le32(sb, 40));
        if !(1..=bits_per_block).contains(&inodes_per_group) {
            return Err(corrupt(format!(
                "inodes per group {inodes_per_group} is out of range (1..={bits_per_block})"
            )));
        }

        let inode_size = if revision == 0 {
            INODE_CORE_SIZE as u64
        } else {
            u64::from(le16(sb, 88))
        };
        if inode_size < INODE_CORE_SIZE as u64
            || !inode_size.is_power_of_two()
            || inode_size > block_size
        {
            return Err(corrupt(format!(
                "inode size {inode_size} is invalid (a power of two, 128..={block_size})"
            )));
        }

        let group_count = (blocks_count - first_data_block).div_ceil(blocks_per_group);
        let inodes_count = le32(sb, 0);
        if u64::from(inodes_count) != group_count * inodes_per_group {
            return Err(corrupt(format!(
                "inode count {inodes_count} does not match {group_count} groups of \
                 {inodes_per_group} inodes"
            )));
        }

        // The group descriptor table starts in the block after the superblock's.
        let gdt_offset = (superblock_block + 1) * block_size;
        if gdt_offset + group_count * GROUP_DESC_SIZE > fs_bytes {
            return Err(corrupt(format!(
                "the group descriptor table ({group_count} groups) does not fit in the file system"
            )));
        }

        Ok(Geometry {
            block_size,
            blocks_count,
            inodes_count,
            inodes_per_group,
            inode_size,
            fs_bytes,
            gdt_offset,
            inode_table_blocks: (inodes_per_group * inode_size).div_ceil(block_size),
        })
    }
}

/// Checks that `sb` is an ext2 superblock this reader understands: the magic, the revision and
/// the incompatible features. Returns the revision.
fn check_format(image: &Path, sb: &[u8; SUPERBLOCK_SIZE]) -> Result<u32, ImageError> {
    let unsupported = |detail: String| ImageError::Unsupported {
        image: image.to_owned(),
        detail,
    };
    let magic = le16(sb, 56);
    if magic != EXT2_MAGIC {
        return Err(ImageError::NotExt2 {
            image: image.to_owned(),
            magic,
        });
    }
    let revision = le32(sb, 76);
    if revision > 1 {
        return Err(unsupported(format!(
            "superblock revision {revision} (ext2 has revisions 0 and 1)"
        )));
    }
    // Revision 0 predates feature flags; its feature fields are not meaningful.
    if revision == 1 {
        let unknown = le32(sb, 96) & !INCOMPAT_FILETYPE;
        if unknown != 0 {
            return Err(unsupported(describe_incompat(unknown)));
        }
    }
    Ok(revision)
}

/// Explains a set of incompatible features we do not support, naming ext4 where it applies.
fn describe_incompat(bits: u32) -> String {
    let mut names = Vec::new();
    let mut ext4 = false;
    let mut known = 0;
    for &(bit, name, is_ext4) in INCOMPAT_FEATURES {
        if bits & bit != 0 {
            names.push(name.to_owned());
            ext4 |= is_ext4;
            known |= bit;
        }
    }
    if bits & !known != 0 {
        names.push(format!("unknown {:#x}", bits & !known));
    }
    let names = names.join(", ");
    if ext4 {
        format!(
            "this is an ext4 file system (incompatible features: {names}); only ext2 is \
             supported, make the image with `mke2fs -t ext2`"
        )
    } else {
        format!(
            "incompatible features this reader does not understand: {names}; only ext2 is \
             supported, make the image with `mke2fs -t ext2`"
        )
    }
}

/// One parsed directory entry.
struct DirEntry<'b> {
    inode: u32,
    rec_len: usize,
    name: &'b [u8],
}

/// Parses the directory entry at the start of `rest` (the remainder of a directory block). The
/// error says what is wrong with the entry.
fn parse_dir_entry(rest: &[u8]) -> Result<DirEntry<'_>, String> {
    if rest.len() < 8 {
        return Err("is cut off by the end of the block".to_owned());
    }
    let inode = le32(rest, 0);
    let mut rec_len = usize::from(le16(rest, 4));
    // A 64 KiB record does not fit in 16 bits; Linux stores it as 0 or 65535.
    if rest.len() == 1 << 16 && (rec_len == 0 || rec_len == 0xffff) {
        rec_len = 1 << 16;
    }
    // Linux ext2 uses an 8-bit name length (the next byte is the file type, or 0 in revision 0).
    let name_len = usize::from(rest[6]);
    if rec_len < 8 || rec_len % 4 != 0 {
        return Err(format!("has bad rec_len {rec_len}"));
    }
    if rec_len > rest.len() {
        return Err(format!(
            "has rec_len {rec_len} running past the end of the block"
        ));
    }
    if 8 + name_len > rec_len {
        return Err(format!(
            "has name_len {name_len} that does not fit in rec_len {rec_len}"
        ));
    }
    Ok(DirEntry {
        inode,
        rec_len,
        name: &rest[8..8 + name_len],
    })
}

/// A word for an inode's file type, for error messages.
fn kind_name(mode: u16) -> &'static str {
    match mode & S_IFMT {
        S_IFREG => "regular file",
        S_IFDIR => "directory",
        S_IFLNK => "symbolic link",
        0x2000 => "character device",
        0x6000 => "block device",
        0x1000 => "fifo",
        0xc000 => "socket",
        _ => "file of unknown type",
    }
}

/// Little-endian u16 at `at`; callers guarantee `at + 2 <= bytes.len()`.
fn le16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

/// Little-endian u32 at `at`; callers guarantee `at + 4 <= bytes.len()`.
fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::process::Command;

    const KERNEL_LEN: usize = 50_000;
    const CMDLINE: &[u8] = b"console=ttyS0 quiet\n";
    const MIB: u64 = 1 << 20;

    /// xorshift64: deterministic test data and fuzzing without another dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// `len` pseudo-random bytes; different seeds give different contents.
    fn pattern(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&rng.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    fn mke2fs() -> PathBuf {
        let found = ["/usr/sbin/mke2fs", "/sbin/mke2fs", "/usr/bin/mke2fs"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists());
        found.expect(
            "mke2fs not found in /usr/sbin, /sbin or /usr/bin: install e2fsprogs, the ext2 tests \
             need it to build real images",
        )
    }

    /// A directory tree and the image built from it, in a temporary directory.
    struct Fixture {
        dir: tempfile::TempDir,
        tree: PathBuf,
        img: PathBuf,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let tree = dir.path().join("tree");
            fs::create_dir(&tree).unwrap();
            let img = dir.path().join("guest.img");
            Fixture { dir, tree, img }
        }

        /// A tree with `/boot/kernel` and `/boot/cmdline`.
        fn boot() -> Self {
            let f = Fixture::new();
            f.file("boot/kernel", &pattern(KERNEL_LEN, 1));
            f.file("boot/cmdline", CMDLINE);
            f
        }

        fn file(&self, rel: &str, data: &[u8]) {
            let path = self.tree.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, data).unwrap();
        }

        /// Runs `mke2fs -q -F ARGS -d TREE IMG BLOCKS`.
        fn mkfs(&self, args: &[&str], blocks: u64) {
            let out = Command::new(mke2fs())
                .args(["-q", "-F"])
                .args(args)
                .arg("-d")
                .arg(&self.tree)
                .arg(&self.img)
                .arg(blocks.to_string())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "mke2fs {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }

        fn build(&self, args: &[&str], blocks: u64) -> Ext2Image {
            self.mkfs(args, blocks);
            self.open().unwrap()
        }

        fn open(&self) -> Result<Ext2Image, ImageError> {
            Ext2Image::open(&self.img)
        }

        fn patch(&self, offset: u64, bytes: &[u8]) {
            let file = fs::OpenOptions::new().write(true).open(&self.img).unwrap();
            file.write_all_at(bytes, offset).unwrap();
        }
    }

    fn assert_boot_files(img: &Ext2Image) {
        assert_eq!(
            img.read_file("/boot/kernel", 64 * MIB).unwrap(),
            pattern(KERNEL_LEN, 1)
        );
        assert_eq!(img.read_file("/boot/cmdline", 4096).unwrap(), CMDLINE);
    }

    // Reading valid images.

    #[test]
    fn reads_small_files_at_every_block_size() {
        for bs in ["1024", "2048", "4096", "65536"] {
            let f = Fixture::boot();
            let blocks = 4 * MIB / bs.parse::<u64>().unwrap();
            let img = f.build(&["-t", "ext2", "-b", bs], blocks);
            assert_eq!(img.geo.block_size.to_string(), bs);
            assert_boot_files(&img);
        }
    }

    #[test]
    fn reads_128_byte_inodes() {
        let f = Fixture::boot();
        let img = f.build(&["-t", "ext2", "-b", "1024", "-I", "128"], 4096);
        assert_eq!(img.geo.inode_size, 128);
        assert_boot_files(&img);
    }

    #[test]
    fn reads_revision_0() {
        let f = Fixture::boot();
        let img = f.build(&["-t", "ext2", "-b", "1024", "-r", "0"], 4096);
        assert_eq!(img.geo.inode_size, 128);
        assert_boot_files(&img);
    }

    #[test]
    fn reads_ext3_without_pending_journal_recovery() {
        // ext3 is ext2 plus a journal (a compat feature), so a clean one reads as ext2.
        let f = Fixture::boot();
        let img = f.build(&["-t", "ext3", "-b", "1024"], 8192);
        assert_boot_files(&img);
    }

    #[test]
    fn reads_dense_file_through_double_indirect_blocks() {
        // 1 MiB at 1 KiB blocks: 12 direct + 256 single indirect, the rest double indirect.
        let f = Fixture::new();
        let data = pattern(MIB as usize + 123, 2);
        f.file("boot/kernel", &data);
        let img = f.build(&["-t", "ext2", "-b", "1024"], 4096);
        let inode = img.lookup("/boot/kernel").unwrap();
        assert_ne!(
            inode.block[13], 0,
            "file should use a double indirect block"
        );
        assert_eq!(img.read_file("/boot/kernel", 64 * MIB).unwrap(), data);
    }

    /// Writes a sparse file of `len` bytes with pattern chunks at `offsets`; returns its contents.
    fn sparse_file(f: &Fixture, rel: &str, len: u64, offsets: &[u64]) -> Vec<u8> {
        let path = f.tree.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let file = fs::File::create(&path).unwrap();
        file.set_len(len).unwrap();
        let mut expected = vec![0u8; len as usize];
        for (i, &offset) in offsets.iter().enumerate() {
            let chunk = pattern(5000.min((len - offset) as usize), 10 + i as u64);
            file.write_all_at(&chunk, offset).unwrap();
            expected[offset as usize..offset as usize + chunk.len()].copy_from_slice(&chunk);
        }
        expected
    }

    #[test]
    fn reads_20_mib_sparse_file_through_double_indirect_blocks() {
        let f = Fixture::new();
        let len = 20 * MIB;
        // Chunks in the direct, single and double indirect ranges, across their boundaries, and
        // at the very end.
        let offsets = [
            0,
            10_000,
            270_000,
            274_000,
            5 * MIB + 7,
            10 * MIB,
            len - 5000,
        ];
        let expected = sparse_file(&f, "boot/kernel", len, &offsets);
        let img = f.build(&["-t", "ext2", "-b", "1024"], 4096);
        let inode = img.lookup("/boot/kernel").unwrap();
        assert_ne!(
            inode.block[13], 0,
            "file should use a double indirect block"
        );
        let data = img.read_file("/boot/kernel", 64 * MIB).unwrap();
        assert!(data == expected, "20 MiB file content differs");
    }

    #[test]
    fn reads_sparse_file_through_triple_indirect_blocks() {
        // At 1 KiB blocks, triple indirect starts after 12 + 256 + 256^2 blocks (about 64.3 MiB).
        let f = Fixture::new();
        let len = 70 * MIB;
        let expected = sparse_file(&f, "big", len, &[0, 69 * MIB, len - 100]);
        let img = f.build(&["-t", "ext2", "-b", "1024"], 4096);
        let inode = img.lookup("/big").unwrap();
        assert_ne!(
            inode.block[14], 0,
            "file should use a triple indirect block"
        );
        let data = img.read_file("/big", 70 * MIB).unwrap();
        assert!(data == expected, "70 MiB file content differs");
    }

    #[test]
    fn sparse_holes_read_as_zeros() {
        let f = Fixture::new();
        // A hole at the start, data in the middle, a hole running to the end of the file.
        let expected = sparse_file(&f, "boot/kernel", 300_000, &[100_000]);
        let img = f.build(&["-t", "ext2", "-b", "1024"], 4096);
        let inode = img.lookup("/boot/kernel").unwrap();
        assert_eq!(inode.block[0], 0, "the first block should be a hole");
        assert_eq!(img.read_file("/boot/kernel", MIB).unwrap(), expected);
    }

    #[test]
    fn reads_nested_directories() {
        let f = Fixture::boot();
        f.file("a/b/c/d/e/deep.txt", b"deep\n");
        f.file("a/b/other", b"other\n");
        let img = f.build(&["-t", "ext2", "-b", "4096"], 1024);
        assert_eq!(
            img.read_file("/a/b/c/d/e/deep.txt", 100).unwrap(),
            b"deep\n"
        );
        assert_eq!(img.read_file("/a/b/other", 100).unwrap(), b"other\n");
        // Repeated slashes are harmless.
        assert_eq!(img.read_file("//a//b/other", 100).unwrap(), b"other\n");
    }

    #[test]
    fn reads_directory_spanning_many_blocks() {
        let f = Fixture::boot();
        let name = |i: usize| format!("entry-{i:04}-{}", "x".repeat(60));
        for i in 0..600 {
            f.file(
                &format!("boot/{}", name(i)),
                format!("file {i}\n").as_bytes(),
            );
        }
        let img = f.build(&["-t", "ext2", "-b", "1024"], 4096);
        let boot = img.lookup("/boot").unwrap();
        assert!(boot.size > 20 * 1024, "directory should span many blocks");
        for i in [0, 1, 299, 598, 599] {
            let path = format!("/boot/{}", name(i));
            assert_eq!(
                img.read_file(&path, 100).unwrap(),
                format!("file {i}\n").as_bytes()
            );
        }
        assert_boot_files(&img);
    }

    #[test]
    fn empty_file_reads_as_empty() {
        let f = Fixture::boot();
        f.file("boot/empty", b"");
        let img = f.build(&["-t", "ext2"], 4096);
        assert_eq!(img.read_file("/boot/empty", 0).unwrap(), b"");
    }

    // Lookup and size errors.

    #[test]
    fn too_large_is_refused_before_reading() {
        let f = Fixture::boot();
        let img = f.build(&["-t", "ext2"], 4096);
        let err = img
            .read_file("/boot/kernel", KERNEL_LEN as u64 - 1)
            .unwrap_err();
        assert!(
            matches!(err, ImageError::TooLarge { size, max_len, .. }
                if size == KERNEL_LEN as u64 && max_len == KERNEL_LEN as u64 - 1),
            "{err:?}"
        );
        // Exactly the limit is fine.
        assert!(img.read_file("/boot/kernel", KERNEL_LEN as u64).is_ok());
    }

    #[test]
    fn missing_files_and_directories() {
        let f = Fixture::boot();
        let img = f.build(&["-t", "ext2"], 4096);
        for path in ["/boot/nope", "/nope/kernel", "/boot/kernel2", "/boot/kerne"] {
            let err = img.read_file(path, MIB).unwrap_err();
            assert!(
                matches!(err, ImageError::NotFound { .. }),
                "{path}: {err:?}"
            );
        }
    }

    #[test]
    fn path_through_a_regular_file() {
        let f = Fixture::boot();
        let img = f.build(&["-t", "ext2"], 4096);
        let err = img.read_file("/boot/kernel/x", MIB).unwrap_err();
        assert!(
            matches!(&err, ImageError::NotADirectory { parent, .. } if parent == "/boot/kernel"),
            "{err:?}"
        );
    }

    #[test]
    fn symlinks_and_directories_are_not_regular_files() {
        let f = Fixture::boot();
        symlink("cmdline", f.tree.join("boot/link")).unwrap();
        symlink("boot", f.tree.join("bootlink")).unwrap();
        let img = f.build(&["-t", "ext2"], 4096);
        let err = img.read_file("/boot/link", MIB).unwrap_err();
        assert!(
            matches!(
                err,
                ImageError::NotRegularFile {
                    kind: "symbolic link",
                    ..
                }
            ),
            "{err:?}"
        );
        let err = img.read_file("/boot", MIB).unwrap_err();
        assert!(
            matches!(
                err,
                ImageError::NotRegularFile {
                    kind: "directory",
                    ..
                }
            ),
            "{err:?}"
        );
        let err = img.read_file("/", MIB).unwrap_err();
        assert!(
            matches!(
                err,
                ImageError::NotRegularFile {
                    kind: "directory",
                    ..
                }
            ),
            "{err:?}"
        );
        // Symlinks are not followed in the middle of a path either.
        let err = img.read_file("/bootlink/kernel", MIB).unwrap_err();
        assert!(matches!(err, ImageError::NotADirectory { .. }), "{err:?}");
    }

    #[test]
    fn bad_paths() {
        let f = Fixture::boot();
        let img = f.build(&["-t", "ext2"], 4096);
        let long = format!("/{}", "a".repeat(256));
        for path in [
            "boot/kernel",
            "",
            "/boot/../boot/kernel",
            "/./boot/kernel",
            &long,
        ] {
            let err = img.read_file(path, MIB).unwrap_err();
            assert!(matches!(err, ImageError::BadPath { .. }), "{path}: {err:?}");
        }
    }

    // Images that are not (valid) ext2.

    #[test]
    fn missing_image() {
        let f = Fixture::new();
        let err = f.open().unwrap_err();
        assert!(matches!(err, ImageError::Open { .. }), "{err:?}");
        let err = Ext2Image::open(f.dir.path()).unwrap_err();
        assert!(matches!(err, ImageError::Open { .. }), "directory: {err:?}");
    }

    #[test]
    fn empty_image() {
        let f = Fixture::new();
        fs::write(&f.img, b"").unwrap();
        let err = f.open().unwrap_err();
        assert!(matches!(err, ImageError::Empty { .. }), "{err:?}");
    }

    #[test]
    fn tiny_image() {
        let f = Fixture::new();
        fs::write(&f.img, pattern(1500, 3)).unwrap();
        let err = f.open().unwrap_err();
        assert!(
            matches!(err, ImageError::TooSmall { len: 1500, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn random_bytes_image() {
        let f = Fixture::new();
        fs::write(&f.img, pattern(MIB as usize, 4)).unwrap();
        let err = f.open().unwrap_err();
        assert!(matches!(err, ImageError::NotExt2 { .. }), "{err:?}");
    }

    #[test]
    fn truncated_image() {
        let f = Fixture::boot();
        f.mkfs(&["-t", "ext2"], 4096);
        let len = fs::metadata(&f.img).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&f.img)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
        let err = f.open().unwrap_err();
        assert!(matches!(err, ImageError::Truncated { .. }), "{err:?}");
    }

    #[test]
    fn image_without_kernel() {
        let f = Fixture::new();
        f.file("etc/hostname", b"noa\n");
        let img = f.build(&["-t", "ext2"], 4096);
        let err = img.read_file("/boot/kernel", 64 * MIB).unwrap_err();
        assert!(matches!(err, ImageError::NotFound { .. }), "{err:?}");
    }

    #[test]
    fn ext4_image_is_rejected_as_ext4() {
        let f = Fixture::boot();
        f.mkfs(&["-t", "ext4"], 8192);
        let err = f.open().unwrap_err();
        assert!(matches!(err, ImageError::Unsupported { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("ext4") && msg.contains("extents"), "{msg}");
    }

    #[test]
    fn error_messages_are_distinct_one_line_and_name_the_image() {
        let errors = [
            {
                let f = Fixture::new();
                f.open().unwrap_err()
            },
            {
                let f = Fixture::new();
                fs::write(&f.img, b"").unwrap();
                f.open().unwrap_err()
            },
            {
                let f = Fixture::new();
                fs::write(&f.img, pattern(MIB as usize, 4)).unwrap();
                f.open().unwrap_err()
            },
            {
                let f = Fixture::boot();
                f.mkfs(&["-t", "ext2"], 4096);
                fs::OpenOptions::new()
                    .write(true)
                    .open(&f.img)
                    .unwrap()
                    .set_len(MIB)
                    .unwrap();
                f.open().unwrap_err()
            },
            {
                let f = Fixture::new();
                f.file("etc/hostname", b"noa\n");
                f.build(&["-t", "ext2"], 4096)
                    .read_file("/boot/kernel", MIB)
                    .unwrap_err()
            },
        ];
        let mut kinds = HashSet::new();
        for err in &errors {
            let msg = err.to_string();
            println!("vmm: {msg}");
            assert!(!msg.contains('\n'), "{msg}");
            assert!(msg.contains("guest.img: "), "{msg}");
            // Strip the temporary directory so that only the problem is compared.
            kinds.insert(msg.rsplit("guest.img: ").next().unwrap().to_owned());
        }
        assert_eq!(kinds.len(), errors.len(), "{kinds:?}");
        let not_found = errors[4].to_string();
        assert!(not_found.ends_with("guest.img: /boot/kernel: no such file in the image"));
    }

    // Targeted corruption of a real image.

    /// Builds the standard boot image at 1 KiB blocks and returns it open.
    fn corruptible() -> (Fixture, Ext2Image) {
        let f = Fixture::boot();
        let img = f.build(&["-t", "ext2", "-b", "1024"], 4096);
        (f, img)
    }

    fn assert_corrupt(result: Result<impl std::fmt::Debug, ImageError>, words: &str) {
        match result {
            Err(ImageError::Corrupt { detail, .. }) => {
                assert!(detail.contains(words), "expected {words:?} in {detail:?}")
            }
            other => panic!("expected a Corrupt error mentioning {words:?}, got {other:?}"),
        }
    }

    fn patch_superblock(field: u64, bytes: &[u8]) -> Result<Ext2Image, ImageError> {
        let (f, _) = corruptible();
        f.patch(SUPERBLOCK_OFFSET + field, bytes);
        f.open()
    }

    #[test]
    fn corrupt_superblock_fields() {
        assert_corrupt(patch_superblock(24, &7u32.to_le_bytes()), "block size");
        assert_corrupt(patch_superblock(24, &u32::MAX.to_le_bytes()), "block size");
        assert_corrupt(
            patch_superblock(20, &0u32.to_le_bytes()),
            "first data block",
        );
        assert_corrupt(patch_superblock(4, &1u32.to_le_bytes()), "block count");
        assert_corrupt(
            patch_superblock(32, &0u32.to_le_bytes()),
            "blocks per group",
        );
        assert_corrupt(
            patch_superblock(32, &100_000u32.to_le_bytes()),
            "blocks per group",
        );
        assert_corrupt(
            patch_superblock(40, &0u32.to_le_bytes()),
            "inodes per group",
        );
        assert_corrupt(patch_superblock(0, &12345u32.to_le_bytes()), "inode count");
        assert_corrupt(patch_superblock(88, &100u16.to_le_bytes()), "inode size");
        assert_corrupt(patch_superblock(88, &2048u16.to_le_bytes()), "inode size");
        let err = patch_superblock(4, &u32::MAX.to_le_bytes()).unwrap_err();
        assert!(matches!(err, ImageError::Truncated { .. }), "{err:?}");
        let err = patch_superblock(76, &5u32.to_le_bytes()).unwrap_err();
        assert!(matches!(err, ImageError::Unsupported { .. }), "{err:?}");
        let err = patch_superblock(96, &0x0100_0002u32.to_le_bytes()).unwrap_err();
        assert!(err.to_string().contains("unknown 0x1000000"), "{err}");
        let err = patch_superblock(96, &0x0000_0006u32.to_le_bytes()).unwrap_err();
        assert!(err.to_string().contains("needs_recovery"), "{err}");
    }

    #[test]
    fn corrupt_group_descriptor() {
        let (f, img) = corruptible();
        // Group 0's inode table pointer, past the end of the file system.
        f.patch(img.geo.gdt_offset + 8, &5000u32.to_le_bytes());
        assert_corrupt(f.open(), "inode table");
        f.patch(img.geo.gdt_offset + 8, &0u32.to_le_bytes());
        assert_corrupt(f.open(), "inode table");
    }

    #[test]
    fn corrupt_root_inode() {
        let (f, img) = corruptible();
        let root = img.inode_offset(ROOT_INODE).unwrap();
        f.patch(root, &S_IFREG.to_le_bytes());
        assert_corrupt(f.open(), "not a directory");
        f.patch(root, &0u16.to_le_bytes());
        assert_corrupt(f.open(), "not in use");
        f.patch(root, &(S_IFDIR | 0o755).to_le_bytes());
        // A directory size that is not a whole number of blocks.
        f.patch(root + 4, &1000u32.to_le_bytes());
        assert_corrupt(f.open().unwrap().read_file("/boot/kernel", MIB), "multiple");
        f.patch(root + 4, &u32::MAX.to_le_bytes());
        assert_corrupt(
            f.open().unwrap().read_file("/boot/kernel", MIB),
            "more than",
        );
    }

    #[test]
    fn corrupt_directory_entries() {
        let (f, img) = corruptible();
        let root_block = u64::from(img.read_inode(ROOT_INODE).unwrap().block[0]);
        let at = root_block * 1024;
        let read = |f: &Fixture| f.open().unwrap().read_file("/boot/kernel", MIB);
        // The first entry is ".": rec_len 12, name_len 1.
        f.patch(at + 4, &0u16.to_le_bytes());
        assert_corrupt(read(&f), "rec_len 0");
        f.patch(at + 4, &13u16.to_le_bytes());
        assert_corrupt(read(&f), "rec_len 13");
        f.patch(at + 4, &2048u16.to_le_bytes());
        assert_corrupt(read(&f), "past the end");
        f.patch(at + 4, &12u16.to_le_bytes());
        f.patch(at + 6, &[200]);
        assert_corrupt(read(&f), "name_len 200");
        f.patch(at + 6, &[1]);
        assert!(read(&f).is_ok());
        // Point the "boot" entry at inode 0xffff_fff0 and then at an unused inode.
        let boot = img.lookup("/boot").unwrap().number;
        let block = fs::read(&f.img).unwrap()[at as usize..at as usize + 1024].to_vec();
        let entry = (0..1020)
            .find(|&i| le32(&block, i) == boot && &block[i + 8..i + 12] == b"boot")
            .expect("boot entry");
        f.patch(at + entry as u64, &0xffff_fff0u32.to_le_bytes());
        assert_corrupt(read(&f), "out of range");
        f.patch(at + entry as u64, &1000u32.to_le_bytes());
        assert_corrupt(read(&f), "not in use");
    }

    #[test]
    fn corrupt_block_pointers() {
        let (f, img) = corruptible();
        let kernel = img.lookup("/boot/kernel").unwrap();
        let inode = img.inode_offset(kernel.number).unwrap();
        let read = |f: &Fixture| f.open().unwrap().read_file("/boot/kernel", 64 * MIB);
        // A direct pointer outside the file system.
        f.patch(inode + 40, &4096u32.to_le_bytes());
        assert_corrupt(read(&f), "block pointer 4096");
        f.patch(inode + 40, &kernel.block[0].to_le_bytes());
        // An indirect block that points at itself is read as data, not followed forever.
        let ind = u64::from(kernel.block[12]);
        f.patch(ind * 1024, &kernel.block[12].to_le_bytes());
        let data = read(&f).unwrap();
        assert_eq!(data.len(), KERNEL_LEN);
        // A double indirect pointer that points at the single indirect block: a size that needs
        // double indirect blocks then walks into data pointers used as pointer blocks.
        f.patch(inode + 40 + 13 * 4, &kernel.block[12].to_le_bytes());
        f.patch(inode + 4, &(MIB as u32).to_le_bytes());
        let _ = read(&f);
        // A size larger than the block map can address.
        f.patch(inode + 108, &u32::MAX.to_le_bytes());
        let err = f
            .open()
            .unwrap()
            .read_file("/boot/kernel", u64::MAX)
            .unwrap_err();
        assert_corrupt(Err::<(), _>(err), "can address");
        // The ext4 extents flag on an ext2 inode.
        f.patch(inode + 32, &EXT4_EXTENTS_FL.to_le_bytes());
        let err = read(&f).unwrap_err();
        assert!(matches!(err, ImageError::Unsupported { .. }), "{err:?}");
    }

    /// Flips random bytes in the metadata of a real image, thousands of times: opening and
    /// reading must only ever return Ok or Err, never panic, hang or allocate wildly.
    #[test]
    fn corruption_fuzz_never_panics() {
        let f = Fixture::boot();
        f.file("etc/hostname", b"noa\n");
        f.file("boot/dir/nested", b"nested\n");
        // 128 KiB with few inodes: superblock, descriptors, bitmaps, inode table, directories
        // and the kernel's indirect block all sit in the first ~64 KiB.
        f.mkfs(&["-t", "ext2", "-b", "1024", "-N", "32"], 128);
        let original = fs::read(&f.img).unwrap();
        let fuzzed_len = original.len().min(64 * 1024) as u64;

        // Most flips go to the blocks that steer the reader; the rest land anywhere.
        let img = f.open().unwrap();
        let mut hot = vec![1, 2]; // the superblock and the group descriptors
        let table = img.inode_table(0).unwrap();
        hot.extend(table..table + img.geo.inode_table_blocks);
        for dir in ["/", "/boot", "/boot/dir"] {
            hot.push(u64::from(img.lookup(dir).unwrap().block[0]));
        }
        hot.push(u64::from(img.lookup("/boot/kernel").unwrap().block[12]));
        assert!(
            hot.iter().all(|&b| b > 0 && b * 1024 < fuzzed_len),
            "{hot:?}"
        );
        drop(img);

        let file = fs::OpenOptions::new().write(true).open(&f.img).unwrap();
        // EXT2_FUZZ_ITERATIONS / EXT2_FUZZ_SEED allow a longer run by hand (`--release`).
        let env = |name, default| std::env::var(name).map_or(default, |v| v.parse().unwrap());
        let iterations = env("EXT2_FUZZ_ITERATIONS", 5000);
        let mut rng = XorShift(env("EXT2_FUZZ_SEED", 0x5eed_1234_abcd_ef01) | 1);
        let (mut ok, mut err) = (0, 0);
        for _ in 0..iterations {
            let mut bytes = original[..fuzzed_len as usize].to_vec();
            for _ in 0..1 + rng.below(4) {
                let at = if rng.below(4) == 0 {
                    rng.below(fuzzed_len)
                } else {
                    hot[rng.below(hot.len() as u64) as usize] * 1024 + rng.below(1024)
                } as usize;
                bytes[at] = match rng.below(4) {
                    0 => 0,
                    1 => 0xff,
                    _ => bytes[at] ^ (1 + rng.below(255) as u8),
                };
            }
            file.write_all_at(&bytes, 0).unwrap();
            let Ok(img) = Ext2Image::open(&f.img) else {
                err += 1;
                continue;
            };
            for path in [
                "/boot/kernel",
                "/boot/cmdline",
                "/boot/dir/nested",
                "/missing",
            ] {
                match img.read_file(path, 16 * MIB) {
                    Ok(_) => ok += 1,
                    Err(_) => err += 1,
                }
            }
        }
        // Both outcomes must occur, or the fuzzer is not exercising anything.
        println!("fuzz: ok {ok}, err {err}");
        assert!(
            ok > iterations / 5 && err > iterations / 5,
            "ok {ok}, err {err}"
        );
    }
}
