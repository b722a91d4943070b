#!/usr/bin/env bash
# Run a GPU job longer than one `run` call (10 min) as a daemon on the held machine, and poll it from later calls
# made within the machine's idle window. The job runs from a copy of the tree, so later calls may change files.
#   gpu_daemon.sh start 'ENV=... bash scripts/archive/gpu_session_x4.sh'   start the job (its log: /tmp/daemon/log)
#   gpu_daemon.sh poll SECONDS [RESULTS] [CKPT]   wait up to SECONDS for it to end, print the log's tail, and
#       bring back, whether or not it has ended, RESULTS (a folder of small files, as results.tar) and CKPT (a
#       folder, as ckpt.tar.* parts of 15 MB: cat them), so a lost machine loses little
# A machine that went back (idle past its window) has no job: poll then fails at once instead of waiting.
set -uo pipefail
D=/tmp/daemon
case "$1" in
  start)
    rm -rf "$D" /tmp/repo && mkdir -p "$D" && cp -r . /tmp/repo
    (cd /tmp/repo && setsid nohup bash -c "$2; echo \$? > $D/rc" > "$D/log" 2>&1 < /dev/null &)
    echo "started: $2" ;;
  poll)
    [ -f "$D/log" ] || { echo "no job on this machine (a fresh machine?): start it again" >&2; exit 3; }
    end=$(( $(date +%s) + $2 ))
    while [ ! -f "$D/rc" ] && [ "$(date +%s)" -lt "$end" ]; do sleep 5; done
    tail -n 40 "$D/log"
    cp "$D/log" "$OUT/daemon.log"
    [ -f "$D/rc" ] && echo "job ended, rc $(cat "$D/rc")"
    [ -n "${3:-}" ] && [ -d "$3" ] && tar cf "$OUT/results.tar" -C "$3" .
    [ -n "${4:-}" ] && [ -f "$4/model_index.json" ] && tar cf - -C "$4" . | split -b 15M - "$OUT/ckpt.tar."
    true ;;
  *) echo "usage: gpu_daemon.sh start CMD | poll SECONDS [RESULTS] [CKPT]" >&2; exit 2 ;;
esac
