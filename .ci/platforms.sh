#!/usr/bin/env bash
# CI for the platforms beyond the build machine (called at the end of .ci/run):
#   (a) clippy, warnings as errors, for aarch64-apple-darwin (zig compiles ring's and
#       SQLite's C for it);
#   (b) the static x86_64-unknown-linux-musl binary, alone in an empty root (chroot: no
#       /etc, no /proc, no time-zone database), answers sipgate's signed capture with the
#       XML of a rule that needs TIMEZONE=America/New_York, journals it (CALL_LOG_FILE),
#       and its `calls` subcommand shows the call;
#   (c) the image built from the Dockerfile with buildah answers it the same way, and its
#       `health` subcommand reports the server healthy.
# Everything listens on 127.0.0.1 only. The tools are installed when missing; a failed
# install fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

fail() {
  echo "platforms.sh: FAILED: $*" >&2
  exit 1
}

timed() {
  local name=$1 started=$SECONDS
  shift
  echo "platforms.sh: $name" >&2
  "$@"
  echo "platforms.sh: $name took $((SECONDS - started)) s" >&2
}

# --- tools ----------------------------------------------------------------------------
install_tools() {
  local target
  for target in aarch64-apple-darwin x86_64-unknown-linux-musl; do
    rustup target list --installed | grep -qx "$target" ||
      rustup target add "$target" || fail "rustup target add $target failed"
  done
  # cargo-zigbuild runs zig from PATH or from the ziglang Python package; both on PyPI.
  if ! command -v cargo-zigbuild >/dev/null 2>&1 ||
    ! { command -v zig >/dev/null 2>&1 || python3 -c 'import ziglang' >/dev/null 2>&1; }; then
    python3 -m pip install --quiet ziglang cargo-zigbuild ||
      fail "python3 -m pip install ziglang cargo-zigbuild failed (see above)"
    hash -r
    command -v cargo-zigbuild >/dev/null 2>&1 ||
      fail "cargo-zigbuild installed by pip is not on PATH"
  fi
  local packages=()
  command -v buildah >/dev/null 2>&1 || packages+=(buildah)
  command -v curl >/dev/null 2>&1 || packages+=(curl)
  command -v chroot >/dev/null 2>&1 || packages+=(coreutils)
  command -v readelf >/dev/null 2>&1 || packages+=(binutils)
  if [ "${#packages[@]}" -gt 0 ]; then
    $sudo apt-get update -qq || fail "apt-get update failed"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" ||
      fail "apt-get install ${packages[*]} failed"
  fi
}

# --- (a) macOS ------------------------------------------------------------------------
macos_clippy() {
  # The lints CI holds Linux to, over the code macOS compiles: the portable platform
  # module, and every cfg branch of the tests and examples. (cargo-zigbuild's clippy is
  # `cargo-zigbuild clippy`; `cargo zigbuild` only builds.)
  cargo-zigbuild clippy --locked --all-targets --target aarch64-apple-darwin -- -D warnings
}

# --- the signed capture ---------------------------------------------------------------
readonly NAME=sipgateio-callevents
readonly WEBHOOK_URL_CI=https://calls.example.com/hooks/ci
work=$(mktemp -d)
server_pid=""
container=""
buildah_flags=(--root "$work/storage" --runroot "$work/run" --storage-driver vfs)

cleanup() {
  if [ -n "$server_pid" ]; then
    kill -TERM -- "-$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ -n "$container" ]; then
    buildah "${buildah_flags[@]}" rm "$container" >/dev/null 2>&1 || true
  fi
  if [ -d "$work/storage" ]; then
    buildah "${buildah_flags[@]}" rmi --all --force >/dev/null 2>&1 || true
  fi
  # Never through a mount a run may have left behind (chroot isolation binds /proc, /dev).
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

# A rule that fits only when TIMEZONE is read: the window, UTC-6 to UTC-2 of this hour,
# holds New York's time now (UTC-5 in winter, UTC-4 in summer) with at least an hour to
# spare either side, and neither the time in UTC nor in the default Europe/Berlin (UTC+1,
# UTC+2). The date is read in UTC, so the host needs no time-zone database.
write_rules() {
  local utc_hour from to
  utc_hour=$((10#$(date -u +%H)))
  from=$(((utc_hour + 24 - 6) % 24))
  to=$(((utc_hour + 24 - 2) % 24))
  printf '[[rule]]\nname = "New York hours"\nmatch = { to = "4928559389086", hours = "%02d:00-%02d:00" }\nanswer = { reject = "busy" }\n' \
    "$from" "$to" >"$1"
}

# What the rule answers: its Reject, inside the subscription to the call's events.
readonly EXPECTED='<?xml version="1.0" encoding="UTF-8"?>
<Response onAnswer="https://calls.example.com/hooks/ci/on-answer" onHangup="https://calls.example.com/hooks/ci/on-hangup"><Reject reason="busy" /></Response>'

# Starts "$@" (the server in its root) in a process group of its own, with its stderr in
# $1's log, and sets $port from the address it logs.
start_server() {
  local log=$1
  shift
  setsid "$@" >"$work/stdout" 2>"$log" &
  server_pid=$!
  local waited=0
  until grep -q 'listening on' "$log"; do
    kill -0 "$server_pid" 2>/dev/null || fail "the server exited at start: $(cat "$log")"
    [ "$waited" -lt 200 ] || fail "the server did not log 'listening on' within 20 s: $(cat "$log")"
    sleep 0.1
    waited=$((waited + 1))
  done
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$log" | head -n 1)
  [ -n "$port" ] || fail "no port in the log: $(cat "$log")"
}

# The server's own process in the group started by start_server: under buildah run it is
# the grandchild of buildah, which does not pass signals on.
server_process() {
  local stat pid comm state ppid group rest
  for stat in /proc/[0-9]*/stat; do
    read -r pid comm state ppid group rest <"$stat" 2>/dev/null || continue
    if [ "$group" = "$server_pid" ] && [ "$comm" = "(${NAME:0:15})" ]; then
      echo "$pid"
      return
    fi
  done
  fail "no $NAME process in the group of $server_pid"
}

# Stops the server as a supervisor would (SIGTERM to it alone), which must end in exit 0.
stop_server() {
  $sudo kill -TERM "$(server_process)"
  wait "$server_pid" || fail "the server did not stop cleanly (exit $?): $(cat "$1")"
  server_pid=""
}

# POSTs the capture with sipgate's headers, as the proxy would pass it on, and checks the
# answer is the rule's XML.
post_capture() {
  local answer
  answer=$(curl --silent --show-error --fail-with-body --max-time 10 \
    "http://127.0.0.1:$port/hooks/ci/new-call" \
    -H 'Host: calls.example.com' \
    -H 'User-Agent: sipgate.io' \
    -H 'Accept: application/xml, text/plain, text/html' \
    -H 'Content-Type: application/x-www-form-urlencoded; charset=UTF-8' \
    -H 'X-Forwarded-Proto: https' \
    -H "X-Sipgate-Signature: $(cat tests/fixtures/18-signed-real-capture.sig)" \
    --data-binary @tests/fixtures/18-signed-real-capture.form) ||
    fail "$1: the signed capture was refused: $answer"
  [ "$answer" = "$EXPECTED" ] ||
    fail "$1: the answer is not the rule's XML; expected
$EXPECTED
got
$answer"
  echo "platforms.sh: $1 answered the signed capture with the rule's XML" >&2
}

settings=(
  "WEBHOOK_URL=$WEBHOOK_URL_CI"
  "LISTEN_ADDR=127.0.0.1:0"
  "CALL_RULES_FILE=/rules.toml"
  "TIMEZONE=America/New_York"
)

# The callId of the signed capture (tests/fixtures/18-signed-real-capture.form).
CAPTURE_CALL_ID=54566B150B0C0D3A5D534D5F565D7C5F54535A5C5B53525A7E5B5D5745504457444C425D5057

version=$(sed -n 's/^version = "\([^"]*\)"$/\1/p' Cargo.toml | head -n 1)

# --- (b) the static binary alone ------------------------------------------------------
static_binary() {
  # The release build users get, fat LTO included: on two cores it takes about a minute
  # from nothing, which .ci/run can afford. DIST_DIR keeps it out of dist/ and its
  # SHA256SUMS, which hold what the developer built.
  DIST_DIR="$work/dist" scripts/dist.sh x86_64-unknown-linux-musl
  local root="$work/root"
  mkdir "$root"
  cp "$work/dist/linux-amd64/$NAME" "$root/$NAME"
  write_rules "$root/rules.toml"
  local said
  said=$($sudo chroot "$root" "/$NAME" --version)
  [ "$said" = "$NAME $version (x86_64-unknown-linux-musl)" ] ||
    fail "--version in the empty root says \"$said\""
  # Only these two files in the root; env -i keeps the host's settings out.
  local files
  files=$(cd "$root" && find . -mindepth 1 | sort | tr '\n' ' ')
  [ "$files" = "./rules.toml ./$NAME " ] || fail "the root holds more than the binary and the rules: $files"
  # With the call journal: SQLite is compiled into the binary, so it needs no library here.
  start_server "$work/chroot.log" $sudo env -i "${settings[@]}" CALL_LOG_FILE=/calls.sqlite \
    "$(command -v chroot)" "$root" "/$NAME"
  grep -q 'answering calls by 1 rule' "$work/chroot.log" ||
    fail "the server did not load the rules: $(cat "$work/chroot.log")"
  post_capture "the static binary in an empty root"
  stop_server "$work/chroot.log"
  local history
  history=$($sudo env -i CALL_LOG_FILE=/calls.sqlite TIMEZONE=America/New_York \
    "$(command -v chroot)" "$root" "/$NAME" calls --format csv) ||
    fail "calls in the empty root failed: $history"
  grep -q "^$CAPTURE_CALL_ID,in,.*,ongoing" <<<"$history" ||
    fail "the journal in the empty root lacks the signed capture's call: $history"
  echo "platforms.sh: the static binary journaled the call and calls shows it" >&2
}

# --- (c) the image --------------------------------------------------------------------
image() {
  # The context holds only what .dockerignore lets in, so a file the Dockerfile needs
  # beyond those fails here too. --format docker keeps HEALTHCHECK, which the OCI image
  # format has no field for.
  local context="$work/context"
  mkdir -p "$context/dist/linux-amd64"
  cp Dockerfile .dockerignore "$context/"
  cp "$work/dist/linux-amd64/$NAME" "$context/dist/linux-amd64/"
  buildah "${buildah_flags[@]}" bud --quiet --isolation chroot --format docker \
    --platform linux/amd64 -t "$NAME" "$context" >/dev/null
  local config
  config=$(buildah "${buildah_flags[@]}" inspect --type image "$NAME")
  for wanted in '"User": "65532:65532"' '"LISTEN_ADDR=0.0.0.0:8080"' '"8080/tcp"' \
    '"/sipgateio-callevents",' '"health"'; do
    grep -qF "$wanted" <<<"$config" || fail "the image's config lacks $wanted"
  done
  container=$(buildah "${buildah_flags[@]}" from --pull-never "$NAME")
  local mount
  write_rules "$work/rules.toml"
  # The rules file mounted read-only, as in docs/deployment.md; the image's LISTEN_ADDR
  # (0.0.0.0:8080) is replaced, as chroot isolation shares the host's network and CI
  # listens on the loopback only.
  mount="type=bind,source=$work/rules.toml,destination=/rules.toml,ro"
  local env_flags=() setting
  for setting in "${settings[@]}"; do env_flags+=(--env "$setting"); done
  start_server "$work/image.log" buildah "${buildah_flags[@]}" run --isolation chroot \
    --mount "$mount" "${env_flags[@]}" "$container" "/$NAME"
  post_capture "the image"
  local uid
  uid=$(sed -n 's/^Uid:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$(server_process)/status")
  [ "$uid" = 65532 ] || fail "the image's server runs as user $uid, not 65532"
  # The HEALTHCHECK's command, run as the runtime runs it: in the container, by its user,
  # with the server's settings.
  buildah "${buildah_flags[@]}" run --isolation chroot \
    --env "LISTEN_ADDR=127.0.0.1:$port" --env "WEBHOOK_URL=$WEBHOOK_URL_CI" \
    "$container" "/$NAME" health >&2 || fail "the image's health check failed"
  stop_server "$work/image.log"
}

timed "installing the tools" install_tools
timed "(a) clippy for aarch64-apple-darwin" macos_clippy
timed "(b) the static binary in an empty root" static_binary
timed "(c) the image" image
