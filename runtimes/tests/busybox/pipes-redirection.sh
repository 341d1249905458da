# Pipes, redirection (files under a scratch dir in /tmp), here-documents, subshells, command
# substitution, parameter expansion, loops and functions. Self-checking; deterministic output.
failures=0
check() { # NAME EXPECTED ACTUAL
	if [ "$2" = "$3" ]; then echo "ok $1"; else
		echo "FAIL $1: expected [$2] got [$3]"; failures=$((failures + 1)); fi
}
dir=$(mktemp -d) || { echo "FAIL mktemp"; exit 1; }
trap 'rm -rf "$dir"' EXIT

# Pipes.
check pipe.simple "HELLO" "$(echo hello | tr a-z A-Z)"
check pipe.chain "3" "$(printf 'b\na\nc\n' | sort | tail -n 3 | wc -l)"
check pipe.large "100000" "$(seq 1 100000 | wc -l)"
check pipe.large_last "100000" "$(seq 1 100000 | tail -n 1)"
# The writer gets SIGPIPE (or EPIPE) once head has gone: the pipeline must still end.
check pipe.sigpipe "1000" "$(yes | head -n 1000 | wc -l)"
true | false; check pipe.status_last_false 1 $?
false | true; check pipe.status_last_true 0 $?

# Redirection.
echo first > "$dir/f"
echo second >> "$dir/f"
check redirect.append "first second" "$(cat "$dir/f" | tr '\n' ' ' | sed 's/ $//')"
check redirect.stdin "2" "$(wc -l < "$dir/f")"
ls /noa/no/such/path 2> "$dir/err" > "$dir/out"
check redirect.stderr_file_nonempty yes "$([ -s "$dir/err" ] && echo yes)"
check redirect.stdout_file_empty yes "$([ -s "$dir/out" ] || echo yes)"
{ echo to-out; echo to-err >&2; } > "$dir/both" 2>&1
check redirect.both "to-out to-err" "$(tr '\n' ' ' < "$dir/both" | sed 's/ $//')"
exec 3> "$dir/fd3"
echo via-fd3 >&3
exec 3>&-
check redirect.exec_fd "via-fd3" "$(cat "$dir/fd3")"
: > "$dir/f"
check redirect.truncate "0" "$(wc -c < "$dir/f")"
name=world
cat > "$dir/here" <<EOT
hello $name
literal \$name
EOT
check heredoc.expanded "hello world|literal \$name" "$(paste -s -d '|' "$dir/here")"
check heredoc.quoted 'no $name here' "$(cat <<'EOT'
no $name here
EOT
)"

# Subshells: variables and the working directory stay inside.
x=outer
before=$(pwd)
(x=inner; cd "$dir" && [ "$(pwd)" = "$dir" ] && echo "subshell in scratch dir")
check subshell.var outer "$x"
check subshell.cwd "$before" "$(pwd)"
check subshell.exit_status 3 "$( (exit 3); echo $?)"
check subshell.grouping "a b" "$( { echo a; echo b; } | tr '\n' ' ' | sed 's/ $//')"

# Command substitution and expansion.
check subst.nested "inner" "$(echo $(echo $(echo inner)))"
check subst.backticks "8" "`expr 3 + 5`"
check arith "42" "$(( (6 * 7) % 100 ))"
path=/usr/local/lib/libnoa.so.1
check expand.length 26 "${#path}"
check expand.suffix /usr/local/lib/libnoa "${path%%.*}"
check expand.prefix libnoa.so.1 "${path##*/}"
check expand.default fallback "${unset_variable:-fallback}"
check expand.replace /usr/local/LIB/libnoa.so.1 "${path/lib/LIB}"

# Loops, case, functions.
total=0
for i in 1 2 3 4 5 6 7 8 9 10; do
	[ $i -eq 3 ] && continue
	[ $i -eq 9 ] && break
	total=$((total + i))
done
check loop.for 33 "$total"
n=0
while [ $n -lt 5 ]; do n=$((n + 1)); done
check loop.while 5 "$n"
until [ $n -eq 0 ]; do n=$((n - 1)); done
check loop.until 0 "$n"
printf 'k1 v1\nk2 v2\nk3 v3\n' > "$dir/kv"
out=
while read -r key value; do out="$out$value,"; done < "$dir/kv"
check loop.while_read "v1,v2,v3," "$out"
kind() {
	case "$1" in
	*.c | *.h) echo c ;;
	*.rs) echo rust ;;
	[0-9]*) echo number ;;
	*) return 4 ;;
	esac
}
check case.c c "$(kind main.c)"
check case.rust rust "$(kind lib.rs)"
check case.number number "$(kind 42x)"
kind other; check function.return 4 $?
counter() { local count=$1; count=$((count + 1)); echo $count; }
count=100
check function.local 8 "$(counter 7)"
check function.local_untouched 100 "$count"
set -- alpha "beta gamma" delta
check positional.count 3 $#
check positional.second "beta gamma" "$2"
shift
check positional.shift "beta gamma delta" "$*"

if [ $failures -eq 0 ]; then echo "pipes-redirection: all checks passed"; else
	echo "pipes-redirection: $failures checks FAILED"; exit 1; fi
