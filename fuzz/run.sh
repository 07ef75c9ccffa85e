#!/usr/bin/env bash
# Runs every fuzz target for a bounded time each, seeding the corpora from tests/fixtures.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, all targets)
#   FUZZ_RUNS=N fuzz/run.sh SECONDS [TARGET...]      (each target until N executions)
#
# FUZZ_RUNS passes libFuzzer -runs=N, so a record can name a number of executions that does
# not depend on how busy the machine was; SECONDS stays as a cap (whichever comes first), so
# give it generously. Unset, each target runs for SECONDS as before.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). libFuzzer needs nightly-only compiler
# flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. Prints one summary line
# per target (executions, crash artifacts) and exits non-zero if any target crashed.
set -euo pipefail

seconds=${1:-60}
shift || true
runs_limit=()
if [ -n "${FUZZ_RUNS:-}" ]; then
    # libFuzzer reads -runs=-1 (or a typo it cannot parse) as "no limit"; refuse rather
    # than silently run to the time cap.
    case $FUZZ_RUNS in
        *[!0-9]* | 0*) echo "FUZZ_RUNS must be a positive whole number, not '$FUZZ_RUNS'" >&2; exit 2 ;;
    esac
    runs_limit=(-runs="$FUZZ_RUNS")
fi
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
fixtures=../tests/fixtures
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(event_parse form_pairs signature route xml_roundtrip rules journal_entry)
fi
export RUSTC_BOOTSTRAP=1
form='application/x-www-form-urlencoded; charset=UTF-8'

# The route each fixture belongs to, from its name.
route_of() {
    case "$1" in
        0[7-8]-*) echo /on-answer ;;
        09-* | 1[0-2]-*) echo /on-hangup ;;
        1[3-5]-*) echo /on-dtmf ;;
        *) echo /new-call ;;
    esac
}

seed() {
    local dir
    dir=corpus/event_parse && mkdir -p "$dir"
    for file in "$fixtures"/*.form; do
        name=$(basename "$file" .form)
        for kind in 0 1 2 3; do
            { printf "\\x0$kind"; cat "$file"; } >"$dir/seed-$kind-$name"
        done
    done

    dir=corpus/form_pairs && mkdir -p "$dir"
    cp "$fixtures"/*.form "$dir"/

    dir=corpus/signature && mkdir -p "$dir"
    for name in 18-signed-real-capture 19-signed-nodelib-testvector; do
        { cat "$fixtures/$name.sig"; printf '\n'; cat "$fixtures/$name.form"; } >"$dir/seed-$name"
        cat "$fixtures/$name.form" >"$dir/seed-unsigned-$name"
    done

    dir=corpus/route && mkdir -p "$dir"
    for file in "$fixtures"/*.form; do
        name=$(basename "$file" .form)
        # POST with a form Content-Type (0x12), and under the /hooks/abc prefix (0x1a).
        { printf '\x12%s\n%s\n\n' "$(route_of "$name")" "$form"; cat "$file"; } >"$dir/seed-$name"
        { printf '\x1a/hooks/abc%s\n%s\n\n' "$(route_of "$name")" "$form"; cat "$file"; } >"$dir/seed-prefix-$name"
    done
    # The signed capture with verification on (0x36), and a health check.
    { printf '\x36/new-call\n%s\n%s\n' "$form" "$(cat "$fixtures/18-signed-real-capture.sig")"
      cat "$fixtures/18-signed-real-capture.form"; } >"$dir/seed-signed"
    printf '\x00/health\n\n\n' >"$dir/seed-health"

    dir=corpus/xml_roundtrip && mkdir -p "$dir"
    printf '\x07https://example.com/hooks/abc/?token=s3cr3t&x=1' >"$dir/seed-url"
    printf '\x07http://localhost:8080' >"$dir/seed-url-plain"
    printf '\x03https://h.example/on-answer?a=1&b="<'"'"'>"\xffhttps://h.example/on-hangup' >"$dir/seed-values"
    printf '\x1fhttps://h.example/menu.wav\xffhttps://h.example/on-dtmf?menu=m' >"$dir/seed-actions"

    # The same bodies as event_parse: the journal's row is built from an accepted event.
    dir=corpus/journal_entry && mkdir -p "$dir"
    cp corpus/event_parse/seed-* "$dir"/

    dir=corpus/rules && mkdir -p "$dir"
    { printf '#anonymous|4921100000000|1\n'; cat ../examples/call-rules.toml; } >"$dir/seed-example"
    cp ../bench/rules-50.toml "$dir/seed-rules-50"
}

seed
mkdir -p artifacts/logs
status=0
for target in "${targets[@]}"; do
    log=artifacts/logs/$target.log
    # -a: overflow checks and debug assertions on, as in the test build.
    # "${runs_limit[@]+...}": an empty array is "unbound" under set -u in bash before 4.4.
    if cargo fuzz run -a "$target" "corpus/$target" -- \
        -max_total_time="$seconds" ${runs_limit[@]+"${runs_limit[@]}"} -max_len=8192 \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        result=ok
    else
        result=FAILED
        status=1
    fi
    # libFuzzer's own "Done N runs in S second(s)": fuzzing only, not the build; absent
    # after a crash.
    elapsed=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    crashes=$(find "artifacts/$target" -type f 2>/dev/null | wc -l || true)
    corpus=$(find "corpus/$target" -type f | wc -l)
    echo "$target: $result, ${runs:-?} executions in ${elapsed:-?} s (cap ${seconds} s${FUZZ_RUNS:+, ${FUZZ_RUNS} runs}), corpus $corpus files, crash artifacts $crashes (log fuzz/$log)"
done
exit $status
