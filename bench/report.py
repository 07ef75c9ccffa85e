#!/usr/bin/env python3
"""Turns bench/run.sh's raw measurements into the markdown report.

    report.py RUNS_TSV EXTRA_TXT META_TXT VERIFY_TXT

RUNS_TSV: one line per measured run, tab-separated key=value fields (the wrk part is one
field of space-separated key=value pairs). EXTRA_TXT: start-up, size and verify lines.
META_TXT: "key text" lines about the machine and the command. VERIFY_TXT: verify_cost's
human-readable output.
"""

import os
import statistics
import sys
from collections import defaultdict

TICK = os.sysconf("SC_CLK_TCK")
BASELINE = "baseline"
# The goals for serving each connection on its own thread, against tiny_http's own accept
# thread and queue: name -> minimum ratio to the baseline's req/s.
RATIO_GOALS = {"/new-call": 1.2, "/on-hangup": 1.1}
# Targets measured against another target of this server, round by round: (target, against,
# least ratio, what it means).
PAIR_GOALS = [("/new-call metrics", "/new-call", 0.95, "with METRICS=true within 5 % of off")]
RSS_GOAL_MB = 10.0
# The journal targets (CALL_LOG_FILE, CALL_LOG_SYNC=normal) and the route each is measured
# against, round by round; their goals: the least ratio of req/s, the p99 answer time, the
# peak RSS. They are left out of RSS_GOAL_MB, which is the server's without the journal.
JOURNAL_PAIRS = {"/new-call journal": "/new-call", "/on-hangup journal": "/on-hangup"}
JOURNAL_RATIO_GOAL = 0.5
JOURNAL_P99_GOAL_MS = 10.0
JOURNAL_RSS_GOAL_MB = 20.0
VERIFIED, UNVERIFIED = "/new-call verified", "/new-call"
# wrk's connections: at most this many requests per run are answered after wrk stops counting.
CONNECTIONS_BOUND = int(os.environ.get("BENCH_CONNECTIONS", "32"))


def parse_runs(path):
    runs = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            run = {}
            for field in line.rstrip("\n").split("\t"):
                if field.startswith("name="):
                    run["name"] = field[5:]
                    continue
                for pair in field.split():
                    key, _, value = pair.partition("=")
                    run[key] = value
            for key in list(run):
                if key not in ("name", "format"):
                    run[key] = float(run[key]) if run[key] else 0.0
            run["rps"] = run["requests"] / (run["duration_us"] / 1e6)
            run["cpu_us"] = run["ticks"] / TICK * 1e6 / max(run["requests"], 1)
            runs.append(run)
    return runs


def parse_keyed(path):
    entries = {}
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            parts = line.rstrip("\n").split(" ", 2)
            if len(parts) == 3 and parts[0] in ("startup", "size"):
                entries[(parts[0], parts[1])] = dict(
                    pair.split("=", 1) for pair in parts[2].split() if "=" in pair
                )
            elif len(parts) >= 2 and parts[0] == "verify":
                entries[("verify",)] = dict(
                    pair.split("=", 1) for pair in line.split()[1:] if "=" in pair
                )
    return entries


def parse_meta(path):
    meta = {}
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            key, _, value = line.rstrip("\n").partition(" ")
            meta[key] = value
    return meta


def mb(kb):
    return kb * 1024 / 1e6


def journal_section(by_name, order, emit):
    """The journal targets against the same route without the journal, round by round."""
    names = [name for name in order if name in JOURNAL_PAIRS and JOURNAL_PAIRS[name] in by_name]
    if not names:
        return
    emit("### The call journal (`CALL_LOG_FILE`, `CALL_LOG_SYNC=normal`)\n")
    emit(
        "| Target | req/s (median) | × without the journal (median) | per round | p50 | "
        "p99 (median, highest) | peak RSS (VmHWM) | server CPU per request (without) | "
        "rows / event lines | file per event |"
    )
    emit("|---|---:|---:|---|---:|---:|---:|---:|---|---:|")
    verdicts = []
    for name in names:
        rows = by_name[name]
        against = {r["round"]: r for r in by_name[JOURNAL_PAIRS[name]]}
        pairs = [(r, against[r["round"]]) for r in rows if r["round"] in against]
        ratios = [r["rps"] / a["rps"] for r, a in pairs if a["rps"]]
        ratio = statistics.median(ratios) if ratios else float("nan")
        p99s = [r["p99_us"] / 1000 for r in rows]
        peak = max(mb(r["hwm_kb"]) for r in rows)
        journaled = sum(r.get("journal_rows", 0) for r in rows)
        printed = sum(r.get("journal_lines", 0) for r in rows)
        stored = sum(r.get("journal_bytes", 0) for r in rows)
        emit(
            f"| `{name}` | {statistics.median(r['rps'] for r in rows):,.0f} | {ratio:.2f} | "
            f"{', '.join(f'{v:.2f}' for v in ratios)} | "
            f"{statistics.median(r['p50_us'] for r in rows) / 1000:.2f} ms | "
            f"{statistics.median(p99s):.2f} ms, {max(p99s):.2f} ms | {peak:.1f} MB | "
            f"{statistics.median(r['cpu_us'] for r in rows):.1f} µs "
            f"({statistics.median(a['cpu_us'] for _, a in pairs):.1f} µs) | "
            f"{journaled:.0f} / {printed:.0f}{'' if journaled == printed else ' **(differ)**'} | "
            f"{stored / journaled if journaled else float('nan'):,.0f} bytes |"
        )
        verdicts.append((name, ratio, statistics.median(p99s), max(p99s), peak, journaled == printed))
    emit("")
    emit(
        "× without the journal is the median of each round's ratio to the same route without "
        "`CALL_LOG_FILE`, measured in the same round (per round: in round order); p99 the "
        "median of the rounds' and the highest; rows are those in the `events` table after "
        "the server's clean stop, event lines all that its stdout got from start to stop "
        "(warm-up included), summed over the rounds: equal when every answered event was "
        "committed. File per event: the main file and its -wal after the stop, over the rows. "
        "Every request repeats one callId; each hangup's summary lookup is one index seek "
        "however many rows that call has."
    )
    emit("")
    for name, ratio, p99, p99_max, peak, complete in verdicts:
        goals = [
            (f"≥ {JOURNAL_RATIO_GOAL} × `{JOURNAL_PAIRS[name]}` req/s", f"{ratio:.2f}",
             ratio >= JOURNAL_RATIO_GOAL),
            (f"p99 < {JOURNAL_P99_GOAL_MS:.0f} ms", f"{p99:.2f} ms (highest round {p99_max:.2f} ms)",
             p99 < JOURNAL_P99_GOAL_MS),
            (f"peak RSS < {JOURNAL_RSS_GOAL_MB:.0f} MB", f"{peak:.1f} MB", peak < JOURNAL_RSS_GOAL_MB),
            ("a row for every event line", "yes" if complete else "no", complete),
        ]
        emit(
            f"- `{name}`: "
            + "; ".join(f"{goal}: {value}, **{'met' if met else 'NOT met'}**" for goal, value, met in goals)
        )
    emit("")


def main():
    runs = parse_runs(sys.argv[1])
    extra = parse_keyed(sys.argv[2])
    meta = parse_meta(sys.argv[3])
    with open(sys.argv[4], encoding="utf-8") as text:
        verify_text = text.read().rstrip()

    by_name = defaultdict(list)
    order = []
    for run in runs:
        if run["name"] not in by_name:
            order.append(run["name"])
        by_name[run["name"]].append(run)
    # Round 1 runs the targets in run.sh's order; keep it, baseline first (a stable sort).
    order.sort(key=lambda name: name != BASELINE)
    baseline_rps = {r["round"]: r["rps"] for r in by_name.get(BASELINE, [])}

    def ratios(name):
        return [
            r["rps"] / baseline_rps[r["round"]]
            for r in by_name[name]
            if r["round"] in baseline_rps
        ]

    baseline_cpu = {r["round"]: r["cpu_us"] for r in by_name.get(BASELINE, [])}

    def cpu_ratios(name):
        return [
            baseline_cpu[r["round"]] / r["cpu_us"]
            for r in by_name[name]
            if r["round"] in baseline_cpu and r["cpu_us"] > 0
        ]

    def median_of(name, key):
        return statistics.median(r[key] for r in by_name[name])

    out = []
    emit = out.append
    emit("## Benchmark results\n")
    emit(f"- Command: `{meta.get('command', '?')}`; load: {meta.get('load', '?')}")
    emit(f"- Date: {meta.get('date', '?')}; commit {meta.get('commit', '?')}")
    emit(f"- Machine: {meta.get('cpu', '?')}; {meta.get('kernel', '?')}; {meta.get('rustc', '?')}")
    emit(f"- Load average: {meta.get('loadavg', '?')}")
    if "journal_fs" in meta:
        emit(f"- Journal targets' files on: {meta['journal_fs']}")
    emit("")
    emit(
        "| Target | req/s (median) | × baseline | p50 | p99 | peak RSS (VmHWM) | "
        "server CPU per request | × baseline (CPU) | event lines / wrk responses | "
        "non-2xx, socket errors |"
    )
    emit("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for name in order:
        rows = by_name[name]
        ratio = "1.00" if name == BASELINE else (
            f"{statistics.median(ratios(name)):.2f}" if ratios(name) else "n/a"
        )
        lines = sum(r["lines"] for r in rows)
        requests = sum(r["requests"] for r in rows)
        formats = sorted({r["format"] for r in rows} - {"none"})
        if name == BASELINE:
            line_cell = "– (prints nothing)"
        else:
            delta = (lines - requests) / requests * 100 if requests else 0.0
            diverted = sum(r.get("diverted", 0) for r in rows)
            line_cell = f"{lines:.0f} / {requests:.0f} ({delta:+.2f} %), {'/'.join(formats) or 'none'}"
            if diverted:
                line_cell += f"; {diverted:.0f} diverted to the log"
        socket_errors = sum(
            r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
            for r in rows
        )
        status_errors = sum(r["status_errors"] for r in rows)
        cpu_ratio = "1.00" if name == BASELINE else (
            f"{statistics.median(cpu_ratios(name)):.2f}" if cpu_ratios(name) else "n/a"
        )
        emit(
            f"| `{name}` | {median_of(name, 'rps'):,.0f} | {ratio} | "
            f"{median_of(name, 'p50_us') / 1000:.2f} ms | {median_of(name, 'p99_us') / 1000:.2f} ms | "
            f"{mb(max(r['hwm_kb'] for r in rows)):.1f} MB | {median_of(name, 'cpu_us'):.1f} µs | {cpu_ratio} | "
            f"{line_cell} | {status_errors:.0f}, {socket_errors:.0f} |"
        )
    emit("")
    emit(
        "req/s, p50, p99 and CPU are medians over the rounds; × baseline is the median of "
        "each round's ratio to the baseline measured in the same round; peak RSS is the "
        "highest VmHWM of any round (MB = 10^6 bytes); CPU per request is the server "
        "process's user+system time during the load divided by wrk's responses, and "
        "× baseline (CPU) the baseline's CPU per request over the target's (requests per "
        "CPU-second relative to the baseline; less disturbed by other load than req/s); event lines "
        "are those printed to stdout during the measured load, summed over the rounds (requests "
        "cut off when wrk stops show as a few extra lines); lines the server could not write "
        "to stdout go to its log and are counted as diverted (warm-up included)."
    )
    emit("")

    emit("### Per round\n")
    emit("| Round | " + " | ".join(f"`{name}`" for name in order) + " |")
    emit("|---|" + "---:|" * len(order))
    for round_ in sorted({r["round"] for r in runs}):
        cells = []
        for name in order:
            match = [r for r in by_name[name] if r["round"] == round_]
            cells.append(f"{match[0]['rps']:,.0f}" if match else "–")
        emit(f"| {round_:.0f} | " + " | ".join(cells) + " |")
    emit("")

    emit("### Goals\n")
    for name, goal in RATIO_GOALS.items():
        if name in by_name and baseline_rps:
            value = statistics.median(ratios(name))
            verdict = "met" if value >= goal else "NOT met"
            cpu_value = statistics.median(cpu_ratios(name)) if cpu_ratios(name) else float("nan")
            emit(
                f"- `{name}` ≥ {goal} × baseline req/s: {value:.2f}, **{verdict}** "
                f"(per round: {', '.join(f'{v:.2f}' for v in ratios(name))}; "
                f"requests per CPU-second: {cpu_value:.2f} × baseline)"
            )
    for name, against, least, meaning in PAIR_GOALS:
        if name in by_name and against in by_name:
            pairs = [
                (r["rps"] / a["rps"], r["cpu_us"] and a["cpu_us"] / r["cpu_us"])
                for r in by_name[name]
                for a in by_name[against]
                if r["round"] == a["round"] and a["rps"]
            ]
            if pairs:
                value = statistics.median(p[0] for p in pairs)
                cpu_value = statistics.median(p[1] for p in pairs)
                verdict = "met" if value >= least else "NOT met"
                emit(
                    f"- `{name}` ≥ {least} × `{against}` req/s ({meaning}): {value:.2f}, **{verdict}** "
                    f"(per round: {', '.join(f'{p[0]:.2f}' for p in pairs)}; "
                    f"requests per CPU-second: {cpu_value:.2f} ×)"
                )
    app_rows = [r for r in runs if r["name"] != BASELINE and r["name"] not in JOURNAL_PAIRS]
    if app_rows:
        peak = max(mb(r["hwm_kb"]) for r in app_rows)
        verdict = "met" if peak < RSS_GOAL_MB else "NOT met"
        which = "every target of this server"
        if any(name in JOURNAL_PAIRS for name in by_name):
            which += " without the journal"
        emit(f"- peak RSS under load < {RSS_GOAL_MB:.0f} MB ({which}): {peak:.1f} MB, **{verdict}**")
    for name in order:
        rows = by_name[name]
        if name == BASELINE or not any(r["lines"] for r in rows):
            continue
        missing = [r for r in rows if r["lines"] + r.get("diverted", 0) < r["requests"]]
        extra_lines = sum(r["lines"] - r["requests"] for r in rows)
        diverted = sum(r.get("diverted", 0) for r in rows)
        # wrk stops with up to one request per connection in flight, at the end of the warm-up
        # (answered after the count before) and of the load (answered after wrk stopped).
        bound = len(rows) * 2 * CONNECTIONS_BOUND
        verdict = "met" if not missing and extra_lines <= bound else "NOT met"
        emit(
            f"- `{name}`: an event line for every answered request: "
            f"{sum(r['lines'] for r in rows):.0f} lines for {sum(r['requests'] for r in rows):.0f} "
            f"responses, {extra_lines:+.0f} (at most two per connection and round expected, "
            f"from requests cut off when wrk stops)"
            + (f", {diverted:.0f} more written to the log instead of stdout" if diverted else "")
            + f", **{verdict}**"
        )
    verify = extra.get(("verify",), {})
    if VERIFIED in by_name and UNVERIFIED in by_name:
        rounds = {r["round"]: r for r in by_name[UNVERIFIED]}
        wall = [
            (1 / r["rps"] - 1 / rounds[r["round"]]["rps"]) * 1e6
            for r in by_name[VERIFIED]
            if r["round"] in rounds
        ]
        cpu = median_of(VERIFIED, "cpu_us") - median_of(UNVERIFIED, "cpu_us")
        emit(
            f"- signature verification cost per request: {statistics.median(wall):.1f} µs of wall time "
            f"at saturation (1/req/s verified − 1/req/s unverified), {cpu:.1f} µs of server CPU "
            f"(CPU per request, verified − unverified); micro-benchmark "
            f"`Verifier::verify`: {verify.get('verify_us', '?')} µs (ring alone {verify.get('ring_us', '?')} µs; "
            f"building the `Verifier`, once at start: {verify.get('build_us', '?')} µs)"
        )
    emit("")

    journal_section(by_name, order, emit)

    emit("### Start-up and size\n")
    emit("| Binary | start-up to first answered `GET /health` (median, min–max) | size unstripped | stripped |")
    emit("|---|---:|---:|---:|")
    sizes = {
        "baseline": extra.get(("size", "baseline"), {}),
        "app": extra.get(("size", "app"), {}),
    }
    labels = [
        ("baseline", "baseline", "`examples/baseline`"),
        ("app-verification-off", "app", "`sipgateio-callevents`, verification off"),
        ("app-verification-on", "app", "`sipgateio-callevents`, verification on (parses the key)"),
    ]
    for key, size_key, label in labels:
        start = extra.get(("startup", key), {})
        size = sizes[size_key]

        def fmt(value):
            return f"{int(value) / 1e6:.2f} MB" if value and value.isdigit() else "n/a"

        emit(
            f"| {label} | {start.get('median', '?')} ms ({start.get('min', '?')}–{start.get('max', '?')}), "
            f"n={start.get('n', '?')} | {fmt(size.get('unstripped'))} | {fmt(size.get('stripped'))} |"
        )
    emit("")
    emit("### `examples/verify_cost` (release)\n")
    emit("```")
    emit(verify_text)
    emit("```")
    print("\n".join(out))


if __name__ == "__main__":
    main()
