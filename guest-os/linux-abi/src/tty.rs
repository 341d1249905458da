//! Terminals: the kernel `struct termios` (36 bytes) and `struct termios2` (44), `struct
//! winsize`, the flag bits and `c_cc` indices, Linux's default terminal settings, and the
//! tty/file ioctl numbers (`include/uapi/asm-generic/{termbits,termbits-common,ioctls}.h`).
//!
//! The kernel's `struct termios` is **36 bytes** (`c_iflag`, `c_oflag`, `c_cflag`, `c_lflag`,
//! `c_line`, `c_cc[19]`). glibc's user-side `struct termios` is 60 bytes (32 `c_cc` plus
//! speeds) but glibc translates through its 36-byte `__kernel_termios`, and musl passes its
//! 60-byte struct directly, of which the kernel reads/writes only the first 36. `TCGETS`
//! must therefore write exactly 36 bytes.

use crate::bytes::*;

pub const TCGETS: u32 = 0x5401;
pub const TCSETS: u32 = 0x5402;
pub const TCSETSW: u32 = 0x5403;
pub const TCSETSF: u32 = 0x5404;
pub const TCGETA: u32 = 0x5405;
pub const TCSETA: u32 = 0x5406;
pub const TCSETAW: u32 = 0x5407;
pub const TCSETAF: u32 = 0x5408;
pub const TCSBRK: u32 = 0x5409;
pub const TCXONC: u32 = 0x540A;
pub const TCFLSH: u32 = 0x540B;
pub const TIOCEXCL: u32 = 0x540C;
pub const TIOCNXCL: u32 = 0x540D;
pub const TIOCSCTTY: u32 = 0x540E;
pub const TIOCGPGRP: u32 = 0x540F;
pub const TIOCSPGRP: u32 = 0x5410;
pub const TIOCOUTQ: u32 = 0x5411;
pub const TIOCSTI: u32 = 0x5412;
pub const TIOCGWINSZ: u32 = 0x5413;
pub const TIOCSWINSZ: u32 = 0x5414;
pub const TIOCMGET: u32 = 0x5415;
pub const TIOCMBIS: u32 = 0x5416;
pub const TIOCMBIC: u32 = 0x5417;
pub const TIOCMSET: u32 = 0x5418;
pub const TIOCGSOFTCAR: u32 = 0x5419;
pub const TIOCSSOFTCAR: u32 = 0x541A;
pub const FIONREAD: u32 = 0x541B;
pub const TIOCINQ: u32 = FIONREAD;
pub const TIOCLINUX: u32 = 0x541C;
pub const TIOCCONS: u32 = 0x541D;
pub const TIOCGSERIAL: u32 = 0x541E;
pub const TIOCSSERIAL: u32 = 0x541F;
pub const TIOCPKT: u32 = 0x5420;
pub const FIONBIO: u32 = 0x5421;
pub const TIOCNOTTY: u32 = 0x5422;
pub const TIOCSETD: u32 = 0x5423;
pub const TIOCGETD: u32 = 0x5424;
pub const TCSBRKP: u32 = 0x5425;
pub const TIOCSBRK: u32 = 0x5427;
pub const TIOCCBRK: u32 = 0x5428;
pub const TIOCGSID: u32 = 0x5429;
pub const TCGETS2: u32 = 0x802C_542A;
pub const TCSETS2: u32 = 0x402C_542B;
pub const TCSETSW2: u32 = 0x402C_542C;
pub const TCSETSF2: u32 = 0x402C_542D;
pub const TIOCGPTN: u32 = 0x8004_5430;
pub const TIOCSPTLCK: u32 = 0x4004_5431;
pub const TIOCGDEV: u32 = 0x8004_5432;
pub const TIOCGPTLCK: u32 = 0x8004_5439;
pub const TIOCGPKT: u32 = 0x8004_5438;
pub const TIOCGEXCL: u32 = 0x8004_5440;
pub const TIOCGPTPEER: u32 = 0x5441;
pub const FIONCLEX: u32 = 0x5450;
pub const FIOCLEX: u32 = 0x5451;
pub const FIOASYNC: u32 = 0x5452;
pub const FIOQSIZE: u32 = 0x5460;

/// `tcsetattr` actions (the `TCSETS*` variants) and `tcflush` selectors.
pub const TCSANOW: u32 = 0;
pub const TCSADRAIN: u32 = 1;
pub const TCSAFLUSH: u32 = 2;
pub const TCIFLUSH: u32 = 0;
pub const TCOFLUSH: u32 = 1;
pub const TCIOFLUSH: u32 = 2;

// c_iflag
pub const IGNBRK: u32 = 0o000001;
pub const BRKINT: u32 = 0o000002;
pub const IGNPAR: u32 = 0o000004;
pub const PARMRK: u32 = 0o000010;
pub const INPCK: u32 = 0o000020;
pub const ISTRIP: u32 = 0o000040;
pub const INLCR: u32 = 0o000100;
pub const IGNCR: u32 = 0o000200;
pub const ICRNL: u32 = 0o000400;
pub const IUCLC: u32 = 0o001000;
pub const IXON: u32 = 0o002000;
pub const IXANY: u32 = 0o004000;
pub const IXOFF: u32 = 0o010000;
pub const IMAXBEL: u32 = 0o020000;
pub const IUTF8: u32 = 0o040000;
// c_oflag
pub const OPOST: u32 = 0o000001;
pub const OLCUC: u32 = 0o000002;
pub const ONLCR: u32 = 0o000004;
pub const OCRNL: u32 = 0o000010;
pub const ONOCR: u32 = 0o000020;
pub const ONLRET: u32 = 0o000040;
pub const OFILL: u32 = 0o000100;
pub const OFDEL: u32 = 0o000200;
// c_cflag
pub const CBAUD: u32 = 0o010017;
pub const B0: u32 = 0o000000;
pub const B9600: u32 = 0o000015;
pub const B38400: u32 = 0o000017;
pub const CBAUDEX: u32 = 0o010000;
pub const B115200: u32 = 0o010002;
pub const BOTHER: u32 = 0o010000;
pub const CSIZE: u32 = 0o000060;
pub const CS5: u32 = 0o000000;
pub const CS6: u32 = 0o000020;
pub const CS7: u32 = 0o000040;
pub const CS8: u32 = 0o000060;
pub const CSTOPB: u32 = 0o000100;
pub const CREAD: u32 = 0o000200;
pub const PARENB: u32 = 0o000400;
pub const PARODD: u32 = 0o001000;
pub const HUPCL: u32 = 0o002000;
pub const CLOCAL: u32 = 0o004000;
pub const CRTSCTS: u32 = 0o20000000000;
// c_lflag
pub const ISIG: u32 = 0o000001;
pub const ICANON: u32 = 0o000002;
pub const XCASE: u32 = 0o000004;
pub const ECHO: u32 = 0o000010;
pub const ECHOE: u32 = 0o000020;
pub const ECHOK: u32 = 0o000040;
pub const ECHONL: u32 = 0o000100;
pub const NOFLSH: u32 = 0o000200;
pub const TOSTOP: u32 = 0o000400;
pub const ECHOCTL: u32 = 0o001000;
pub const ECHOPRT: u32 = 0o002000;
pub const ECHOKE: u32 = 0o004000;
pub const FLUSHO: u32 = 0o010000;
pub const PENDIN: u32 = 0o040000;
pub const IEXTEN: u32 = 0o100000;
pub const EXTPROC: u32 = 0o200000;

// c_cc indices
pub const VINTR: usize = 0;
pub const VQUIT: usize = 1;
pub const VERASE: usize = 2;
pub const VKILL: usize = 3;
pub const VEOF: usize = 4;
pub const VTIME: usize = 5;
pub const VMIN: usize = 6;
pub const VSWTC: usize = 7;
pub const VSTART: usize = 8;
pub const VSTOP: usize = 9;
pub const VSUSP: usize = 10;
pub const VEOL: usize = 11;
pub const VREPRINT: usize = 12;
pub const VDISCARD: usize = 13;
pub const VWERASE: usize = 14;
pub const VLNEXT: usize = 15;
pub const VEOL2: usize = 16;
/// Number of control characters in the kernel termios.
pub const NCCS: usize = 19;

/// Linux `INIT_C_CC`: ^C ^\ DEL ^U ^D, VTIME 0, VMIN 1, 0, ^Q ^S ^Z, 0, ^R ^O ^W ^V, 0.
pub const INIT_C_CC: [u8; NCCS] = [
    0o3, 0o34, 0o177, 0o25, 0o4, 0, 1, 0, 0o21, 0o23, 0o32, 0, 0o22, 0o17, 0o27, 0o26, 0, 0, 0,
];

/// The kernel `struct termios` (36 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Termios {
    pub iflag: u32,
    pub oflag: u32,
    pub cflag: u32,
    pub lflag: u32,
    pub line: u8,
    pub cc: [u8; NCCS],
}

impl Termios {
    pub const SIZE: usize = 36;

    /// Linux `tty_std_termios`: cooked mode with echo, `ICRNL | IXON`, `OPOST | ONLCR`,
    /// `B38400 | CS8 | CREAD | HUPCL`, `ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL |
    /// ECHOKE | IEXTEN`.
    pub const fn default_tty() -> Self {
        Termios {
            iflag: ICRNL | IXON,
            oflag: OPOST | ONLCR,
            cflag: B38400 | CS8 | CREAD | HUPCL,
            lflag: ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN,
            line: 0,
            cc: INIT_C_CC,
        }
    }

    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put_u32(&mut b, 0, self.iflag);
        put_u32(&mut b, 4, self.oflag);
        put_u32(&mut b, 8, self.cflag);
        put_u32(&mut b, 12, self.lflag);
        put_u8(&mut b, 16, self.line);
        b[17..36].copy_from_slice(&self.cc);
        b
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        let mut cc = [0u8; NCCS];
        cc.copy_from_slice(&b[17..36]);
        Some(Termios {
            iflag: u32_at(b, 0),
            oflag: u32_at(b, 4),
            cflag: u32_at(b, 8),
            lflag: u32_at(b, 12),
            line: u8_at(b, 16),
            cc,
        })
    }
}

/// The kernel `struct termios2` for `TCGETS2`/`TCSETS2` (44 bytes: termios + speeds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Termios2 {
    pub termios: Termios,
    pub ispeed: u32,
    pub ospeed: u32,
}

impl Termios2 {
    pub const SIZE: usize = 44;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[..36].copy_from_slice(&self.termios.encode());
        put_u32(&mut b, 36, self.ispeed);
        put_u32(&mut b, 40, self.ospeed);
        b
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(Termios2 {
            termios: Termios::decode(b)?,
            ispeed: u32_at(b, 36),
            ospeed: u32_at(b, 40),
        })
    }
}

/// `struct winsize` (8 bytes: rows, cols, xpixel, ypixel as u16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Winsize {
    pub rows: u16,
    pub cols: u16,
    pub xpixel: u16,
    pub ypixel: u16,
}

impl Winsize {
    pub const SIZE: usize = 8;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        put_u16(&mut b, 0, self.rows);
        put_u16(&mut b, 2, self.cols);
        put_u16(&mut b, 4, self.xpixel);
        put_u16(&mut b, 6, self.ypixel);
        b
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        Some(Winsize {
            rows: u16_at(b, 0),
            cols: u16_at(b, 2),
            xpixel: u16_at(b, 4),
            ypixel: u16_at(b, 6),
        })
    }
}

/// Generic ioctl number encoding (`asm-generic/ioctl.h`): dir (2 bits) | size (14) | type (8)
/// | nr (8).
pub const IOC_NONE: u32 = 0;
pub const IOC_WRITE: u32 = 1;
pub const IOC_READ: u32 = 2;
pub const fn ioc(dir: u32, ty: u8, nr: u8, size: u32) -> u32 {
    (dir << 30) | (size << 16) | ((ty as u32) << 8) | nr as u32
}
/// The argument size encoded in an ioctl number.
pub const fn ioc_size(cmd: u32) -> u32 {
    (cmd >> 16) & 0x3fff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn termios_layout() {
        let t = Termios::default_tty();
        let b = t.encode();
        assert_eq!(b.len(), 36);
        assert_eq!(u32_at(&b, 0), 0o2400);
        assert_eq!(u32_at(&b, 4), 0o5);
        assert_eq!(u32_at(&b, 8), 0o2277);
        assert_eq!(u32_at(&b, 12), 0o105073);
        assert_eq!(b[16], 0);
        assert_eq!(b[17 + VINTR], 3);
        assert_eq!(b[17 + VMIN], 1);
        assert_eq!(b[17 + VEOL2], 0);
        assert_eq!(Termios::decode(&b), Some(t));
        let t2 = Termios2 {
            termios: t,
            ispeed: 38400,
            ospeed: 38400,
        };
        assert_eq!(Termios2::decode(&t2.encode()), Some(t2));
        let w = Winsize {
            rows: 24,
            cols: 80,
            xpixel: 0,
            ypixel: 0,
        };
        assert_eq!(&w.encode(), &[24, 0, 80, 0, 0, 0, 0, 0]);
        assert_eq!(Winsize::decode(&w.encode()), Some(w));
        assert_eq!(ioc(IOC_READ, b'T', 0x2A, 44), TCGETS2);
        assert_eq!(ioc(IOC_WRITE, b'T', 0x2B, 44), TCSETS2);
        assert_eq!(ioc(IOC_READ, b'T', 0x30, 4), TIOCGPTN);
        assert_eq!(ioc_size(TCGETS2), 44);
    }
}
