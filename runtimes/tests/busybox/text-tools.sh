# Text tools: sort, uniq, wc, grep, sed, cut, tr, head, tail, awk, printf, seq, sums.
# Self-checking; deterministic output.
failures=0
check() { # NAME EXPECTED ACTUAL
	if [ "$2" = "$3" ]; then echo "ok $1"; else
		echo "FAIL $1: expected [$2] got [$3]"; failures=$((failures + 1)); fi
}
dir=$(mktemp -d) || { echo "FAIL mktemp"; exit 1; }
trap 'rm -rf "$dir"' EXIT
cat > "$dir/people" <<'EOT'
ada:36:london:engineer
linus:54:portland:engineer
grace:85:arlington:admiral
ken:81:berkeley:engineer
barbara:84:boston:professor
dennis:70:berkeley:engineer
EOT
p="$dir/people"
one_line() { paste -s -d "${1:-,}"; }

check sort.default "ada,barbara,dennis,grace,ken,linus" "$(cut -d: -f1 "$p" | sort | one_line)"
check sort.numeric_reverse "85,84,81,70,54,36" "$(cut -d: -f2 "$p" | sort -rn | one_line)"
check sort.key "ada:36,linus:54,dennis:70,ken:81,barbara:84,grace:85" "$(sort -t: -k2,2n "$p" | cut -d: -f1,2 | one_line)"
check sort.unique "admiral,engineer,professor" "$(cut -d: -f4 "$p" | sort -u | one_line)"
check uniq.count "1 admiral,4 engineer,1 professor" "$(cut -d: -f4 "$p" | sort | uniq -c | sed 's/^ *//' | one_line)"
check wc.lines 6 "$(wc -l < "$p")"
check wc.words 1 "$(echo 'one' | wc -w)"
check wc.bytes 158 "$(wc -c < "$p")"
check wc.all "6 6 158" "$(wc < "$p" | tr -s ' ' | sed 's/^ //')"
check grep.count 4 "$(grep -c engineer "$p")"
check grep.invert "grace,barbara" "$(grep -v engineer "$p" | cut -d: -f1 | one_line)"
check grep.extended "ken,dennis" "$(grep -E '^[a-z]+:[0-9]+:berkeley' "$p" | cut -d: -f1 | one_line)"
check grep.ignore_case "grace" "$(grep -i ADMIRAL "$p" | cut -d: -f1)"
check grep.only_matching "36,54,85,81,84,70" "$(grep -o '[0-9][0-9]' "$p" | one_line)"
grep -q nobody "$p"; check grep.no_match_status 1 $?
check sed.substitute "ADA:36:london:ENGINEER" "$(head -n 1 "$p" | sed -e 's/ada/ADA/' -e 's/engineer/ENGINEER/g')"
check sed.delete_range "ada,dennis" "$(sed '2,5d' "$p" | cut -d: -f1 | one_line)"
check sed.print_match "grace" "$(sed -n '/admiral/p' "$p" | cut -d: -f1)"
check sed.regex_groups "london-ada" "$(head -n 1 "$p" | sed -E 's/^([a-z]+):[0-9]+:([a-z]+).*/\2-\1/')"
check sed.in_place "ada:36:paris:engineer" "$(cp "$p" "$dir/copy"; sed -i 's/london/paris/' "$dir/copy"; head -n 1 "$dir/copy")"
check cut.chars "ada,lin,gra,ken,bar,den" "$(cut -c1-3 "$p" | one_line)"
check cut.fields "36:london" "$(head -n 1 "$p" | cut -d: -f2-3)"
check tr.squeeze "a b c" "$(echo 'a    b  c' | tr -s ' ')"
check tr.delete "hll" "$(echo hello | tr -d eo)"
check head_tail "grace" "$(head -n 3 "$p" | tail -n 1 | cut -d: -f1)"
check awk.sum 410 "$(awk -F: '{ s += $2 } END { print s }' "$p")"
check awk.filter "grace barbara" "$(awk -F: '$2 > 82 { printf "%s ", $1 }' "$p" | sed 's/ $//')"
check printf.format "007|ff|  x|3.14" "$(printf '%03d|%x|%3s|%.2f' 7 255 x 3.14159)"
check seq.step "1 4 7 10" "$(seq 1 3 10 | one_line ' ')"
check sha256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" "$(printf '' | sha256sum | cut -d' ' -f1)"
check md5 "5d41402abc4b2a76b9719d911017c592" "$(printf hello | md5sum | cut -d' ' -f1)"
check basename_dirname "libnoa.so|/usr/lib" "$(basename /usr/lib/libnoa.so)|$(dirname /usr/lib/libnoa.so)"
check expr.length 5 "$(expr length hello)"

if [ $failures -eq 0 ]; then echo "text-tools: all checks passed"; else
	echo "text-tools: $failures checks FAILED"; exit 1; fi
