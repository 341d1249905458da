# Background jobs, wait, kill and trap. Self-checking; deterministic output (no pids).
failures=0
check() { # NAME EXPECTED ACTUAL
	if [ "$2" = "$3" ]; then echo "ok $1"; else
		echo "FAIL $1: expected [$2] got [$3]"; failures=$((failures + 1)); fi
}
dir=$(mktemp -d) || { echo "FAIL mktemp"; exit 1; }
trap 'rm -rf "$dir"' EXIT

# A trap runs when the shell signals itself.
usr1=0
trap 'echo got USR1; usr1=$((usr1 + 1))' USR1
kill -USR1 $$
kill -USR1 $$
check trap.usr1_count 2 "$usr1"
trap - USR1
trap '' USR2
kill -USR2 $$
check trap.ignored_survives yes yes
trap - USR2

# wait: exit statuses of background jobs.
sleep 0.1 &
wait $!
check wait.sleep 0 $?
(exit 3) &
wait $!
check wait.status 3 $?
sleep 30 &
pid=$!
kill $pid
wait $pid
check wait.killed_by_term 143 $?
sleep 30 &
pid=$!
kill -9 $pid
wait $pid
check wait.killed_by_kill 137 $?
kill -0 $$
check kill.probe_self 0 $?

# Several jobs, then a bare wait for all of them.
for i in 3 1 2; do
	(sleep 0.$i; echo "job $i" > "$dir/job$i") &
done
wait
check wait.all "job 1,job 2,job 3" "$(cat "$dir"/job* | paste -s -d ,)"

# A child shell catching TERM from its parent: it signals readiness through a file, so the
# signal never arrives before the trap is set.
sh -c 'trap "echo child caught TERM; exit 5" TERM; : > "$1/ready"; while :; do sleep 0.05; done' sh "$dir" &
pid=$!
i=0
while [ ! -e "$dir/ready" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
kill -TERM $pid
wait $pid
check trap.child_term_exit 5 $?

# Signals to a process group member, a trap on EXIT, and the status of a signalled command.
check trap.exit_runs "body then exit trap" "$(sh -c 'trap "echo exit trap" EXIT; echo body then' | paste -s -d ' ')"
sh -c 'kill -USR1 $$'
check signal.status_usr1 $((128 + 10)) $?
check signal.trap_in_child "handled" "$(sh -c 'trap "echo handled; exit 0" INT; kill -INT $$; sleep 5; echo not reached')"

if [ $failures -eq 0 ]; then echo "jobs-signals: all checks passed"; else
	echo "jobs-signals: $failures checks FAILED"; exit 1; fi
