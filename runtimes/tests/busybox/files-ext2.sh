# Files on a disk file system (in the guest: the ext2 root, read-write): directories, renames,
# hard and symbolic links, large and sparse files, truncation, many entries, unlink of an open
# file, modes and times, fallocate, sync. Self-checking; deterministic output.
failures=0
check() { # NAME EXPECTED ACTUAL
	if [ "$2" = "$3" ]; then echo "ok $1"; else
		echo "FAIL $1: expected [$2] got [$3]"; failures=$((failures + 1)); fi
}
# /var/tmp is on the disk (not tmpfs) both natively and in the guest.
dir=$(mktemp -d -p /var/tmp) || { echo "FAIL mktemp"; exit 1; }
trap 'rm -rf "$dir"' EXIT
cd "$dir" || exit 1

mkdir -p a/b/c/d && echo deep > a/b/c/d/file
check mkdir.deep "deep" "$(cat a/b/c/d/file)"
check mkdir.links 3 "$(stat -c %h a/b)"
mkdir a 2>/dev/null; check mkdir.exists 1 $?
rmdir a 2>/dev/null; check rmdir.not_empty 1 $?

echo one > f1; echo two > f2
mv f1 f2
check rename.replaces "one" "$(cat f2)"
[ -e f1 ]; check rename.old_gone 1 $?
mv a/b/c a/moved && check rename.dir "deep" "$(cat a/moved/d/file)"
check rename.dir_parent_links "2,4" "$(stat -c %h a/b),$(stat -c %h a)"
mkdir -p x/y && mv x x/y/z 2>/dev/null; check rename.into_itself 1 $?

ln f2 hard
check link.count 2 "$(stat -c %h f2)"
check link.same_inode "$(stat -c %i f2)" "$(stat -c %i hard)"
rm f2; check link.after_unlink "1 one" "$(stat -c %h hard) $(cat hard)"

ln -s hard short
long_target=$(printf 'd%.0s' $(seq 1 80))/target
ln -s "$long_target" long
check symlink.fast "hard" "$(readlink short)"
check symlink.slow "$long_target" "$(readlink long)"
check symlink.follow "one" "$(cat short)"
check symlink.size "${#long_target}" "$(stat -c %s long)"

dd if=/dev/urandom of=big bs=65536 count=48 2>/dev/null
sum=$(md5sum < big)
cp big big.copy
check big.copy "$sum" "$(md5sum < big.copy)"
check big.size 3145728 "$(stat -c %s big)"
dd if=big of=part bs=4096 skip=700 count=3 2>/dev/null
check big.read_at "$(dd if=big.copy bs=4096 skip=700 count=3 2>/dev/null | md5sum)" "$(md5sum < part)"

printf 'end' | dd of=sparse bs=1 seek=20000000 conv=notrunc 2>/dev/null
check sparse.size 20000003 "$(stat -c %s sparse)"
check sparse.zeros "0000000" "$(dd if=sparse bs=4096 skip=100 count=1 2>/dev/null | od -An -tx1 | tr -d ' \n' | sed 's/0*$/0000000/' | cut -c1-7)"
check sparse.tail "end" "$(tail -c 3 sparse)"
check sparse.few_blocks yes "$([ "$(stat -c %b sparse)" -lt 100 ] && echo yes || echo no)"

truncate -s 5000 big
check truncate.down 5000 "$(stat -c %s big)"
check truncate.keeps "$(head -c 5000 big.copy | md5sum)" "$(md5sum < big)"
truncate -s 9000 big
check truncate.up_zeros "$(printf '%4000s' | tr ' ' '\0' | md5sum)" "$(tail -c 4000 big | md5sum)"

mkdir many
i=0; while [ $i -lt 200 ]; do : > "many/entry-with-a-longish-name-$i"; i=$((i + 1)); done
check many.count 200 "$(ls many | wc -l)"
i=0; while [ $i -lt 200 ]; do rm "many/entry-with-a-longish-name-$i"; i=$((i + 2)); done
check many.half 100 "$(ls many | wc -l)"
check many.survivor yes "$([ -e many/entry-with-a-longish-name-199 ] && echo yes || echo no)"
rm -r many; [ -e many ]; check many.removed 1 $?

echo "still here" > open
exec 3< open
rm open
check unlink_open.read "still here" "$(cat <&3)"
exec 3<&-

: > mode; chmod 640 mode
check chmod 640 "$(stat -c %a mode)"
touch -d '2001-02-03 04:05:06' mode
check touch.mtime "$(date -d '2001-02-03 04:05:06' +%s)" "$(stat -c %Y mode)"

fallocate -l 12345 alloc
check fallocate.size 12345 "$(stat -c %s alloc)"
sync; check sync 0 $?

echo appended >> hard; echo again >> hard
check append "one appended again" "$(cat hard | tr '\n' ' ' | sed 's/ $//')"

cd / && rm -rf "$dir"; [ -e "$dir" ]; check rm_r 1 $?
if [ $failures -eq 0 ]; then echo "files-ext2: all checks passed"; else
	echo "files-ext2: $failures checks FAILED"; exit 1; fi
