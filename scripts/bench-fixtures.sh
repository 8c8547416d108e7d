# shellcheck shell=bash
# shellcheck disable=SC2034 # ready_ms, rss_idle_kib, grpc_addr… are read by the sourcing script
# Sourced by scripts/bench-grpc and scripts/bench-envoy (not run on its own): installs h2load,
# builds the release binaries, and starts the benchmark fixtures pinned to $SERVER_CPU —
#   - the dev issuer (examples/check_frame.rs --serve), which also writes the Check frames and token;
#   - jwt-authz serve, trusting that issuer;
#   - the do-nothing ext_authz server (examples/allow_all.rs);
# plus the helpers both scripts use to verify and summarize runs. Everything started is stopped
# on exit. The caller sets `tag` (for messages) and may set ROUNDS, REQUESTS, DISTINCT, SERVER_CPU,
# LOAD_CPU, OUT, SKIP_BUILD before sourcing.

SERVER_CPU="${SERVER_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
DISTINCT="${DISTINCT:-0}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root" || exit 1
OUT="${OUT:-$root/target/bench}"
mkdir -p "$OUT"
bin="$root/target/release"
AUDIENCE="https://api.example.test"
ALLOW_ALL=127.0.0.1:19292

say() { echo "${tag:-bench}: $*" >&2; }
die() { say "error: $*"; exit 1; }

# --- tools ------------------------------------------------------------------------------------
if ! command -v h2load >/dev/null; then
    say "installing h2load (Debian nghttp2-client)"
    if ! apt-get install -y -qq nghttp2-client >/dev/null 2>&1; then
        { apt-get update -qq && apt-get install -y -qq nghttp2-client; } >/dev/null \
            || die "cannot install nghttp2-client"
    fi
fi
for tool in taskset curl python3; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
if [[ -z "${SKIP_BUILD:-}" ]]; then
    say "building release binaries"
    cargo build --release --quiet --bin jwt-authz \
        --example check_frame --example allow_all --example check_load
fi

# --- processes --------------------------------------------------------------------------------
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

wait_for() { # wait_for SECONDS COMMAND...
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.01
    done
}

tcp_open() { bash -c "exec 3<>/dev/tcp/${1%:*}/${1#*:}"; }

start_issuer() { # writes $OUT/{cached.frame,distinct.frames,missing.frame,token,issuer}
    rm -f "$OUT/ready"
    say "dev issuer: minting 1 cached + $DISTINCT distinct RS256 tokens"
    taskset -c "$SERVER_CPU" "$bin/examples/check_frame" --out "$OUT" --distinct "$DISTINCT" \
        --audience "$AUDIENCE" --serve 2>"$OUT/issuer.log" &
    pids+=($!)
    wait_for 600 test -f "$OUT/ready" || die "the dev issuer did not start (see $OUT/issuer.log)"
    issuer="$(cat "$OUT/issuer")"
}

# jwt-authz instances: "jwt-authz" runs the defaults (verified-token cache on) and also serves
# gRPC on a Unix socket; "jwt-authz:nocache" turns the cache off, so every check verifies;
# "jwt-authz:threads=N" is the defaults with `--worker-threads N`.
declare -A grpc_addr admin_addr authz_pids
grpc_addr[jwt-authz]=127.0.0.1:19191;         admin_addr[jwt-authz]=127.0.0.1:19090
grpc_addr[jwt-authz:nocache]=127.0.0.1:19193; admin_addr[jwt-authz:nocache]=127.0.0.1:19092
grpc_addr[allow_all]=127.0.0.1:19292
# With BASELINE=/path/to/another/jwt-authz (e.g. built from an earlier commit), the same two
# instances of that binary run too, as "jwt-authz:baseline" and "jwt-authz:baseline-nocache":
# an A/B of a change in the same interleaved rounds.
grpc_addr[jwt-authz:baseline]=127.0.0.1:19194;         admin_addr[jwt-authz:baseline]=127.0.0.1:19094
grpc_addr[jwt-authz:baseline-nocache]=127.0.0.1:19195; admin_addr[jwt-authz:baseline-nocache]=127.0.0.1:19095
# "jwt-authz:lean" publishes no claims in the Envoy dynamic metadata (`metadata_claims: none`):
# how much of the cost through Envoy is Envoy reading jwt-authz's answer.
grpc_addr[jwt-authz:lean]=127.0.0.1:19196;    admin_addr[jwt-authz:lean]=127.0.0.1:19096
AUTHZ_UDS="$OUT/jwt-authz.sock"

start_jwt_authz() { # start_jwt_authz NAME; sets ready_ms (process start to /readyz 200) and rss_idle_kib
    local name=$1 cfg="$OUT/${1//[:=]/-}.yaml" started_ns extra="" threads=() exe="${JWT_AUTHZ_BIN:-$bin/jwt-authz}" extra_top=""
    case "$name" in
        jwt-authz) rm -f "$AUTHZ_UDS"; extra="  grpc_uds: $AUTHZ_UDS" ;;
        jwt-authz:nocache) ;;
        jwt-authz:lean) extra_top="metadata_claims: none" ;;
        jwt-authz:baseline*) exe="${BASELINE:?BASELINE is not set}" ;;
        jwt-authz:threads=*) # the defaults on N runtime worker threads (0: current-thread runtime)
            threads=(--worker-threads "${name#*=}")
            local n=$((${name#*=} + 1))
            grpc_addr[$name]=127.0.0.1:$((19200 + n)); admin_addr[$name]=127.0.0.1:$((19100 + n)) ;;
        *) die "unknown jwt-authz instance $name" ;;
    esac
    {
        echo "listen:"
        echo "  grpc: ${grpc_addr[$name]}"
        echo "  admin: ${admin_addr[$name]}"
        [[ -n $extra ]] && echo "$extra"
        echo "issuers:"
        echo "  - issuer: $issuer"
        echo "    audiences: [$AUDIENCE]"
        [[ $name == *nocache ]] && echo "token_cache: { max_entries: 0 }"
        [[ -n $extra_top ]] && echo "$extra_top"
        true
    } >"$cfg"
    started_ns=$(date +%s%N)
    JWT_AUTHZ_LOG=warn taskset -c "$SERVER_CPU" "$exe" "${threads[@]}" serve --config "$cfg" \
        2>"$OUT/${1//[:=]/-}.log" &
    authz_pids[$name]=$!
    pids+=($!)
    wait_for 30 curl -sf "http://${admin_addr[$name]}/readyz" \
        || die "$name not ready (see $OUT/${1//[:=]/-}.log)"
    ready_ms=$(( ($(date +%s%N) - started_ns) / 1000000 ))
    sleep 0.5
    rss_idle_kib=$(rss "$name" VmRSS)
}

rss() { # rss NAME VmRSS|VmHWM -> KiB
    awk -v k="$2:" '$1 == k {print $2}' "/proc/${authz_pids[$1]}/status"
}

start_allow_all() {
    taskset -c "$SERVER_CPU" "$bin/examples/allow_all" "$ALLOW_ALL" 2>"$OUT/allow_all.log" &
    pids+=($!)
    wait_for 30 tcp_open "$ALLOW_ALL" || die "allow_all did not start"
}

# --- measurement helpers ----------------------------------------------------------------------
metric() { # metric NAME DECISION -> sum of jwt_authz_checks_total{frontend="grpc",decision=DECISION}
    curl -sf "http://${admin_addr[$1]}/metrics" | awk -v d="decision=\"$2\"" \
        '/^jwt_authz_checks_total\{/ && index($0, d) && index($0, "frontend=\"grpc\"") {s += $NF}
         END {printf "%d\n", s}'
}

# Verifying a run against jwt-authz's own counters: snapshot before, then compare after.
snapshot() { # snapshot SERVER -> "ALLOWS DENIES" (0 0 for servers that are not jwt-authz)
    if [[ $1 == jwt-authz* ]]; then echo "$(metric "$1" allow) $(metric "$1" deny)"; else echo "0 0"; fi
}
verify_allows() { # verify_allows SERVER "ALLOWS DENIES" OK_SEEN -> "yes", "n/a" or "INVALID(...)"
    [[ $1 == jwt-authz* ]] || { echo n/a; return; }
    local a0 d0 allow deny
    read -r a0 d0 <<<"$2"
    allow=$(( $(metric "$1" allow) - a0 )); deny=$(( $(metric "$1" deny) - d0 ))
    if (( allow == $3 && deny == 0 )); then echo yes
    else echo "INVALID(allow+$allow,deny+$deny,ok=$3)"; fi
}

percentiles() { # percentiles H2LOAD_LOG_FILE -> "p50 p99" of the third column (microseconds)
    cut -f3 "$1" | sort -n | awk '{ v[NR] = $1 } END {
        if (!NR) { print "0 0"; exit }
        a = int(NR * 0.50 + 0.5); b = int(NR * 0.99 + 0.5); if (a < 1) a = 1; if (b < 1) b = 1
        print v[a], v[b] }'
}

# Appends one run to $results: round tool server shape rps ok p50_us p99_us verified, and the
# 1-minute load average when it ended (the machine is shared: a busy one explains an outlier).
record() {
    # shellcheck disable=SC2154 # $results is set by the sourcing script
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" "$(cut -d' ' -f1 /proc/loadavg)" >>"$results"
}
new_results() {
    printf 'round\ttool\tserver\tshape\trps\tok\tp50_us\tp99_us\tverified\tload1\n' >"$results"
}

# Prints the medians table of $results (markdown) and the ratios of jwt-authz (or every
# server) to BASELINE; exits non-zero if a jwt-authz run failed its verification.
summarize() { # summarize BASELINE
    python3 - "$results" "$ROUNDS" "$REQUESTS" "$1" <<'EOF'
import csv, statistics, sys
path, rounds, requests, baseline = sys.argv[1:]
rows = list(csv.DictReader(open(path), delimiter="\t"))
groups = {}
for r in rows:
    groups.setdefault((r["tool"], r["shape"], r["server"]), []).append(r)
med = lambda rs, k: statistics.median(float(r[k]) for r in rs)
print(f"\nmedians over {rounds} interleaved rounds, {requests} requests per run\n")
print("| load | conns x streams | server | req/s (median) | min–max | p50 / p99 latency (medians) | allows verified | load avg |")
print("|---|---|---|---:|---:|---|---|---:|")
for (tool, shape, server), rs in sorted(groups.items()):
    rps = [float(r["rps"]) for r in rs]
    ver = ("yes, every run" if all(r["verified"] == "yes" for r in rs) else
           "all 2xx" if all(r["verified"] == "n/a" for r in rs) else
           "NO: " + ",".join(r["verified"] for r in rs if r["verified"] not in ("yes", "n/a")))
    print(f"| {tool} | {shape} | {server} | {statistics.median(rps):,.0f} | "
          f"{min(rps):,.0f}–{max(rps):,.0f} | {med(rs, 'p50_us') / 1000:.2f} / "
          f"{med(rs, 'p99_us') / 1000:.2f} ms | {ver} | {med(rs, 'load1'):.1f} |")
print()
for (tool, shape, server), rs in sorted(groups.items()):
    base = groups.get((tool, shape, baseline))
    if base and server != baseline:
        a = statistics.median(float(r["rps"]) for r in rs)
        b = statistics.median(float(r["rps"]) for r in base)
        print(f"{server} / {baseline}, {tool} {shape}: {a / b:.2f}")
bad = [r for r in rows if r["verified"] not in ("yes", "n/a")]
sys.exit(1 if bad else 0)
EOF
}
