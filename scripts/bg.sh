# Functions for the background processes of `make run` and `make edge`
# (sourced by node.sh and edge.sh).

# bg_alive PIDFILE: the process the file names is running.
bg_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# bg_stop NAME PIDFILE: SIGTERM (a graceful drain), SIGKILL after 30 s.
bg_stop() {
	local name=$1 pidfile=$2 pid
	bg_alive "$pidfile" || { rm -f "$pidfile"; return 0; }
	pid=$(cat "$pidfile")
	kill -TERM "$pid"
	for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
	rm -f "$pidfile"
	echo "$name: stopped (pid $pid)"
}

# bg_wait NAME PIDFILE LOG URL SECONDS: wait until URL answers 2xx; fail
# with the log's tail when the process exits or the time runs out.
bg_wait() {
	local name=$1 pidfile=$2 log=$3 url=$4 seconds=$5
	for _ in $(seq 1 $((seconds * 10))); do
		if ! bg_alive "$pidfile"; then
			echo "$name: exited during start-up; last log lines:" >&2
			tail -n 20 "$log" >&2
			return 1
		fi
		curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "$name: not ready after $seconds s; see $log" >&2
	return 1
}
