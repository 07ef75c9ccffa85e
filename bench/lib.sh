# Shared by bench/memory.sh and bench/ab.sh (sourced, not run): starting one server.
#
# start_server BINARY WORK [NAME=value ...]
#   Copies BINARY to WORK/server and starts it on a free loopback port, in WORK, with
#   nothing but PATH, LISTEN_ADDR, SKIP_SIGNATURE_VERIFICATION=true and the given
#   variables in its environment; stdout and stderr go to WORK/stdout and WORK/stderr.
#   Sets SERVER_PID and SERVER_PORT and returns once the port takes connections (or after
#   5 s). The caller kills SERVER_PID; no job message is printed for it.
start_server() {
  local binary="$1" work="$2"
  shift 2
  cp "$binary" "$work/server"
  SERVER_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  (cd "$work" && exec env -i PATH="$PATH" LISTEN_ADDR="127.0.0.1:$SERVER_PORT" \
    SKIP_SIGNATURE_VERIFICATION=true "$@" ./server >"$work/stdout" 2>"$work/stderr") &
  SERVER_PID=$!
  disown "$SERVER_PID"
  for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $SERVER_PORT), 0.1)" \
      2>/dev/null && return 0
    sleep 0.05
  done
}
