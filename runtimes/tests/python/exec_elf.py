"""execve of hand-made dynamically linked ELF programs, natively and in the guest.

Writes tiny x86-64 programs into a temporary folder and runs each with subprocess: one good one
(`PT_INTERP` = glibc's ld.so, no libraries, its entry calls exit_group(42): ld.so must find the
program through AT_PHDR/AT_ENTRY and jump there), and hostile ones (bad `PT_INTERP`, bad program
headers, bad interpreters). Prints one line per case, `NAME: exit N` or `NAME: ERRNO`.

Cases marked `(linux)` give what Linux gives, so the host test compares them with the native run;
the others are refused where Linux would map something and then kill the process (or run it), so
only the guest's answer is checked.
"""

import errno
import os
import struct
import subprocess
import sys
import tempfile

LOADER = b"/lib64/ld-linux-x86-64.so.2"
BASE = 0x400000
PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_PHDR = 1, 2, 3, 6
ET_EXEC, ET_DYN = 2, 3
# mov edi, 42; mov eax, 231 (exit_group); syscall
CODE = bytes.fromhex("bf2a000000b8e70000000f05")
# Where things are in the image (and, plus the base, in memory).
INTERP_AT, DYNAMIC_AT, STRTAB_AT, SYMTAB_AT, CODE_AT = 0x200, 0x300, 0x380, 0x3a0, 0x1000
SIZE = CODE_AT + len(CODE)
# Inside the guest kernel's main stack reservation (mm/mod.rs: below 0x7fff_c000_0000).
STACK_AREA = 0x7fff_bfff_0000


def phdr(p_type, flags, offset, vaddr, filesz, memsz, align=0x1000):
    return struct.pack("<IIQQQQQQ", p_type, flags, offset, vaddr, vaddr, filesz, memsz, align)


def good_phdrs(base, interp=LOADER + b"\0"):
    """PT_PHDR, PT_INTERP, one R+X PT_LOAD of the whole image, PT_DYNAMIC."""
    return [
        phdr(PT_PHDR, 4, 64, base + 64, 4 * 56, 4 * 56, 8),
        phdr(PT_INTERP, 4, INTERP_AT, base + INTERP_AT, len(interp), len(interp), 1),
        phdr(PT_LOAD, 5, 0, base, SIZE, SIZE),
        phdr(PT_DYNAMIC, 4, DYNAMIC_AT, base + DYNAMIC_AT, 5 * 16, 5 * 16, 8),
    ]


def program(interp=LOADER + b"\0", phdrs=None, phnum=None, e_type=ET_EXEC):
    """A program image: headers at 0, the PT_INTERP text, a dynamic section with an empty string
    and symbol table (ld.so wants them, no libraries, no relocations), the code."""
    base = BASE if e_type == ET_EXEC else 0
    if phdrs is None:
        phdrs = good_phdrs(base, interp)
    count = len(phdrs) if phnum is None else phnum
    ehdr = b"\x7fELF\x02\x01\x01" + bytes(9)
    ehdr += struct.pack("<HHIQQQIHHHHHH", e_type, 62, 1, base + CODE_AT, 64, 0, 0, 64, 56, count,
                        0, 0, 0)
    image = bytearray(max(SIZE, INTERP_AT + len(interp)))
    image[0:64] = ehdr
    table = b"".join(phdrs)
    image[64:64 + len(table)] = table
    dynamic = struct.pack("<10Q", 5, base + STRTAB_AT, 6, base + SYMTAB_AT, 10, 1, 11, 24, 0, 0)
    image[DYNAMIC_AT:DYNAMIC_AT + len(dynamic)] = dynamic
    image[CODE_AT:CODE_AT + len(CODE)] = CODE
    image[INTERP_AT:INTERP_AT + len(interp)] = interp
    return bytes(image)


def run(folder, name, image, linux_too):
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(image)
    os.chmod(path, 0o755)
    try:
        result = f"exit {subprocess.run([path]).returncode}"
    except OSError as e:
        result = errno.errorcode.get(e.errno, str(e.errno))
    print(f"{name}{' (linux)' if linux_too else ''}: {result}")


def main():
    with tempfile.TemporaryDirectory() as folder:
        short_script = os.path.join(folder, "short-script")
        long_script = os.path.join(folder, "long-script")
        for path, text in [(short_script, "#!/bin/sh\nexit 0\n"),
                           (long_script, "#!/bin/sh\n" + "# padding\n" * 20 + "exit 0\n")]:
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, 0o755)
        loader = LOADER + b"\0"
        cases = [
            ("good-dynamic", program(), True),
            ("good-dynamic-pie", program(e_type=ET_DYN), True),
            ("interp-not-nul-terminated", program(interp=LOADER), True),
            ("interp-too-long", program(interp=b"/" + b"x" * 5000 + b"\0"), True),
            ("interp-empty", program(interp=b"\0"), True),
            ("interp-missing", program(interp=b"/nonexistent/ld.so\0"), True),
            ("interp-shorter-than-a-header", program(interp=short_script.encode() + b"\0"), True),
            ("interp-not-elf", program(interp=long_script.encode() + b"\0"), True),
            ("phnum-too-large", program(phnum=200), True),
            ("interp-outside-file", program(phdrs=[
                phdr(PT_INTERP, 4, 0x100000, 0, len(loader), len(loader), 1),
                phdr(PT_LOAD, 5, 0, BASE, SIZE, SIZE),
            ]), True),
            ("two-interps", program(phdrs=[
                phdr(PT_INTERP, 4, INTERP_AT, BASE + INTERP_AT, len(loader), len(loader), 1),
                phdr(PT_INTERP, 4, INTERP_AT, BASE + INTERP_AT, len(loader), len(loader), 1),
                phdr(PT_LOAD, 5, 0, BASE, SIZE, SIZE),
            ]), False),
            ("overlapping-loads", program(phdrs=good_phdrs(BASE) + [
                phdr(PT_LOAD, 6, 0, BASE, 0x1000, 0x3000),
            ]), False),
            # Where the guest's main stack is (Linux's is higher: there it maps and crashes).
            ("load-over-the-stack", program(phdrs=[
                phdr(PT_INTERP, 4, INTERP_AT, STACK_AREA + INTERP_AT, len(loader), len(loader), 1),
                phdr(PT_LOAD, 5, 0, STACK_AREA, SIZE, SIZE),
            ]), False),
            ("interp-is-dynamic", program(interp=sys.executable.encode() + b"\0"), False),
        ]
        for name, image, linux_too in cases:
            run(folder, name, image, linux_too)


if __name__ == "__main__":
    main()
