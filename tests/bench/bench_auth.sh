#!/bin/sh
# bench_auth.sh: requests/s, p99 and server CPU per request of rolegate's
# /auth with a valid session cookie (the reverse proxy's per-request check,
# a token-cache hit), beside same-run baselines on this machine (issue 17):
#   nginx `return 200`                  (worker_processes auto, as in production)
#   libmicrohttpd trivial handler       (tests/bench/mhd_trivial.c: rolegate's
#                                        server library and options, no work)
#   rolegate /auth direct
#   rolegate /auth with Redis           (issue 7: a second instance of the same
#                                        deployment, its own redis-server)
#   nginx auth_request -> nginx         (the forward-auth ceiling: a second nginx
#                                        answering 200 as the auth server)
#   nginx auth_request -> rolegate /auth
# wrk -t2 -c64 --latency on each; the rows are interleaved in every round
# (the start rotates) and each figure is the median of ROUNDS rounds, so the
# shared machine's noise hits all rows alike; the ratios are of medians of
# this run. Server CPU per request is utime+stime of the server processes
# (/proc/PID/stat) over the requests wrk counted. Prints the machine (nproc,
# CPU model, load average before and after). Targets (issue 17): /auth direct
# >= 0.8x nginx return 200; nginx->rolegate >= 0.9x nginx->nginx.
# Env: BUILD (default build), DURATION per row and round (default 5s),
# ROUNDS (default 3, at least 3 for a median worth quoting), ROWS (a subset
# of the row names below), LOG_LEVEL
# (default info, the shipped default: one request line per /auth), BASE_BIN
# (another rolegate binary, e.g. a build of main before a change: it serves
# the same store and keys as a third instance and gets its own two rows, so
# before/after is a ratio of one run).
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
BIN="$PWD/$BUILD/rolegate"
DURATION=${DURATION:-5s}
LOG_LEVEL=${LOG_LEVEL:-info}
BASE_BIN=${BASE_BIN:-}
ROUNDS=${ROUNDS:-3}
[ -x "$BIN" ] || { echo "bench_auth: $BIN not built (make BUILD=$BUILD all)"; exit 1; }
command -v wrk >/dev/null || { echo "bench_auth: wrk missing (apt-get install wrk)"; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

echo "machine: $(uname -srm), nproc=$(nproc), cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

TMP=$(mktemp -d /tmp/rolegate-bench-auth.XXXXXX)
chmod 755 "$TMP"
RG_PID=""; NG_PID=""; NF_PID=""; RG2_PID=""; RD_PID=""; MT_PID=""; RGB_PID=""
cleanup() {
  [ -n "$RG_PID" ] && kill "$RG_PID" 2>/dev/null && wait "$RG_PID" 2>/dev/null
  [ -n "$RG2_PID" ] && kill "$RG2_PID" 2>/dev/null && wait "$RG2_PID" 2>/dev/null
  [ -n "$RGB_PID" ] && kill "$RGB_PID" 2>/dev/null && wait "$RGB_PID" 2>/dev/null
  [ -n "$RD_PID" ] && kill "$RD_PID" 2>/dev/null && wait "$RD_PID" 2>/dev/null
  [ -n "$MT_PID" ] && kill "$MT_PID" 2>/dev/null && wait "$MT_PID" 2>/dev/null
  [ -n "$NG_PID" ] && kill -QUIT "$NG_PID" 2>/dev/null && wait "$NG_PID" 2>/dev/null
  [ -n "$NF_PID" ] && kill -QUIT "$NF_PID" 2>/dev/null && wait "$NF_PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
PUB=$(free_port); ADM=$(free_port); NGP=$(free_port); MTP=$(free_port)
FNG=$(free_port); FRG=$(free_port); FRB=$(free_port)
KEY="bench-admin-key-$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')"

mkdir -p "$TMP/var"
cat >"$TMP/rolegate.conf" <<EOF
[server]
public_listen = 127.0.0.1:$PUB
admin_listen = 127.0.0.1:$ADM
base_url = http://127.0.0.1:$PUB
[store]
database = $TMP/var/rolegate.db
[log]
file = $TMP/rolegate.log
level = $LOG_LEVEL
[session]
keys_dir = $TMP/var/keys
EOF
(cd "$TMP" && ROLEGATE_ADMIN_KEY="$KEY" exec "$BIN" serve -c "$TMP/rolegate.conf" \
   >"$TMP/stdout" 2>"$TMP/stderr") &
RG_PID=$!

# one member and an admin-issued session (the same calls the tests make)
TOKEN=$(python3 - "$PUB" "$ADM" "$KEY" <<'EOF'
import http.client, json, sys, time
pub, adm, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def call(port, method, path, body=None, auth=True):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    h = {"Content-Type": "application/json"}
    if auth:
        h["Authorization"] = "Bearer " + key
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse(); d = r.read(); c.close()
    return r.status, (json.loads(d) if d else None)
end = time.monotonic() + 15
while True:
    try:
        if call(pub, "GET", "/healthz", auth=False)[0] == 200:
            break
    except OSError:
        pass
    if time.monotonic() > end:
        sys.exit("rolegate did not start")
    time.sleep(0.05)
for p in ("reports:view", "users:view", "users:edit"):
    call(adm, "POST", "/authorization/permissions", {"slug": p, "name": p})
call(adm, "POST", "/authorization/roles", {"slug": "analyst", "name": "Analyst"})
call(adm, "PUT", "/authorization/roles/analyst/permissions",
     {"permissions": ["reports:view", "users:view"]})
org = call(adm, "POST", "/organizations", {"name": "Bench"})[1]["id"]
user = call(adm, "POST", "/user_management/users", {"email": "bench@example.com"})[1]["id"]
om = call(adm, "POST", "/user_management/organization_memberships",
          {"user_id": user, "organization_id": org, "role_slug": "analyst"})[1]["id"]
st, s = call(adm, "POST", "/sessions", {"organization_membership_id": om, "reason": "bench"})
assert st == 201, (st, s)
print(s["token"])
EOF
)
[ -n "$TOKEN" ] || { echo "bench_auth: no session token"; cat "$TMP/stderr"; exit 1; }

# another instance of the same deployment (same store, keys, base URL):
# $1 tag, $2 binary, $3 public port, [$4 extra config]; sets INST_PID
instance() {
  sed -e "s/^public_listen = .*/public_listen = 127.0.0.1:$3/" \
      -e "s/^admin_listen = .*/admin_listen = 127.0.0.1:$(free_port)/" \
      -e "s#^file = .*#file = $TMP/rolegate_$1.log#" "$TMP/rolegate.conf" >"$TMP/rolegate_$1.conf"
  [ $# -ge 4 ] && printf '%s\n' "$4" >>"$TMP/rolegate_$1.conf"
  (cd "$TMP" && ROLEGATE_ADMIN_KEY="$KEY" exec "$2" serve -c "$TMP/rolegate_$1.conf" \
     >"$TMP/stdout_$1" 2>"$TMP/stderr_$1") &
  INST_PID=$!
  for i in $(seq 1 100); do
    [ "$(curl -s "http://127.0.0.1:$3/readyz")" = '{"status":"ready"}' ] && break
    sleep 0.1
  done
  echo "instance $1: $2 $(curl -s "http://127.0.0.1:$3/readyz")"
}
# the second instance, with Redis (issue 7)
RDP=""; PUB2=""
if command -v redis-server >/dev/null; then
  RDP=$(free_port); PUB2=$(free_port)
  redis-server --port "$RDP" --bind 127.0.0.1 --save "" --appendonly no >/dev/null 2>&1 &
  RD_PID=$!
  sleep 0.3
  instance redis "$BIN" "$PUB2" "$(printf '[redis]\nurl = redis://127.0.0.1:%s/0' "$RDP")"
  RG2_PID=$INST_PID
fi
# BASE_BIN: the same deployment served by another build (before/after rows)
PUBB=""
if [ -n "$BASE_BIN" ]; then
  PUBB=$(free_port)
  instance base "$BASE_BIN" "$PUBB"
  RGB_PID=$INST_PID
fi

USER_LINE=""; [ "$(id -u)" = 0 ] && USER_LINE="user root;"
# nginx as production would run it here: worker_processes auto. The first
# instance is the `return 200` baseline and the auth server of the ceiling
# row; the second is the proxy doing auth_request (to it, or to rolegate).
ng_conf() { # $1 dir, $2 server blocks
  mkdir -p "$1/www"
  printf 'ok\n' >"$1/www/ok"
  cat >"$1/nginx.conf" <<EOF
$USER_LINE
worker_processes auto;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $1/cb; proxy_temp_path $1/px;
    fastcgi_temp_path $1/fc; uwsgi_temp_path $1/uw; scgi_temp_path $1/sc;
$2
}
EOF
}
ng_conf "$TMP/ng" "    server { listen 127.0.0.1:$NGP; location / { return 200; } }"
# the front's auth subrequest is configured as etc/nginx-rolegate.conf does
# (keep-alive upstream, no body, HTTP/1.1, 32k buffers for rolegate's headers)
front_server() { # $1 port, $2 upstream
  cat <<EOF
    server {
        listen 127.0.0.1:$1;
        root $TMP/nf/www;
        location / { auth_request /_auth; }
        location = /_auth {
            internal;
            proxy_pass http://$2/auth;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI \$request_uri;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffer_size 32k;
            proxy_buffers 4 32k;
        }
    }
EOF
}
ng_conf "$TMP/nf" "    upstream ngauth { server 127.0.0.1:$NGP; keepalive 64; }
    upstream rolegate { server 127.0.0.1:$PUB; keepalive 64; }
    upstream rolegate_base { server 127.0.0.1:${PUBB:-$PUB}; keepalive 64; }
$(front_server "$FNG" ngauth)
$(front_server "$FRG" rolegate)
$(front_server "$FRB" rolegate_base)"
"$NGINX" -p "$TMP/ng" -c "$TMP/ng/nginx.conf" -g 'daemon off;' &
NG_PID=$!
"$NGINX" -p "$TMP/nf" -c "$TMP/nf/nginx.conf" -g 'daemon off;' &
NF_PID=$!

# libmicrohttpd's floor: the trivial handler with rolegate's options
MT=""
if cc -std=c11 -D_GNU_SOURCE -O2 -o "$TMP/mhd_trivial" tests/bench/mhd_trivial.c \
     $(pkg-config --cflags --libs libmicrohttpd) 2>"$TMP/mhd_cc.err"; then
  # the connection memory rolegate's listener uses (MHD zeroes all of it
  # at every request, so it is part of the floor)
  POOL_KIB=$(sed -n 's/^#define CONN_MEMORY_LIMIT (\([0-9]*\) \* 1024).*/\1/p' src/http/server.c)
  "$TMP/mhd_trivial" "$MTP" "${POOL_KIB:?CONN_MEMORY_LIMIT not found in src/http/server.c}" 2>"$TMP/mhd.err" &
  MT_PID=$!; MT=1
else
  echo "mhd_trivial: not built: $(cat "$TMP/mhd_cc.err")"
fi
sleep 0.5

check=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: rolegate=$TOKEN" "http://127.0.0.1:$PUB/auth")
[ "$check" = 200 ] || { echo "bench_auth: /auth answered $check, not 200"; exit 1; }
for u in "http://127.0.0.1:$FNG/ok" "http://127.0.0.1:$FRG/ok"; do
  check=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: rolegate=$TOKEN" "$u")
  [ "$check" = 200 ] || { echo "bench_auth: $u answered $check, not 200"; exit 1; }
done
check=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$FRG/ok")
[ "$check" = 401 ] || { echo "bench_auth: nginx -> rolegate without a cookie answered $check, not 401"; exit 1; }

# rows: name, url, CPU of which processes ("ng" "nf" "rg" "rg2" "mt")
ROWS=${ROWS:-"nginx mhd auth auth_redis ng_ng ng_rg auth_base ng_rgb"}
row_of() { # $1 row -> URL and LABEL
  case "$1" in
    nginx) URL="http://127.0.0.1:$NGP/" LABEL="nginx return 200 (auto)";;
    mhd) URL="http://127.0.0.1:$MTP/" LABEL="libmicrohttpd trivial";;
    auth) URL="http://127.0.0.1:$PUB/auth" LABEL="rolegate /auth direct";;
    auth_redis) URL="http://127.0.0.1:$PUB2/auth" LABEL="rolegate /auth, Redis";;
    ng_ng) URL="http://127.0.0.1:$FNG/ok" LABEL="nginx auth_request->nginx";;
    ng_rg) URL="http://127.0.0.1:$FRG/ok" LABEL="nginx auth_request->rolegate";;
    auth_base) URL="http://127.0.0.1:$PUBB/auth" LABEL="BASE_BIN /auth direct";;
    ng_rgb) URL="http://127.0.0.1:$FRB/ok" LABEL="nginx auth_request->BASE_BIN";;
  esac
}
label_of() { row_of "$1"; echo "$LABEL"; }
pids_of() { # the server processes whose CPU a row costs
  case "$1" in
    nginx) pgrep -P "$NG_PID";; mhd) echo "$MT_PID";; auth) echo "$RG_PID";;
    auth_redis) echo "$RG2_PID $RD_PID";;
    ng_ng) pgrep -P "$NG_PID"; pgrep -P "$NF_PID";;
    ng_rg) pgrep -P "$NF_PID"; echo "$RG_PID";;
    auth_base) echo "$RGB_PID";;
    ng_rgb) pgrep -P "$NF_PID"; echo "$RGB_PID";;
  esac
}
ticks() { # utime+stime of the pids, summed
  t=0
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] || continue
    v=$(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')
    t=$((t + v))
  done
  echo "$t"
}
HZ=$(getconf CLK_TCK)
rps_of() { awk '/^Requests\/sec:/ {print $2}' "$1"; }
reqs_of() { awk '/requests in/ {print $1}' "$1"; }
p99_ms() { # wrk latency "812.00us" / "1.23ms" / "1.01s" -> ms
  awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); print v/1000}
       else if (v ~ /ms$/) {sub(/ms$/,"",v); print v+0}
       else if (v ~ /s$/) {sub(/s$/,"",v); print v*1000} }' "$1"
}
errs_of() { awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' "$1"; }
median() { sort -g | awk '{v[NR]=$1} END { if (NR == 0) print "n/a";
  else if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2] + v[NR/2+1]) / 2 }'; }

active_rows=""
for r in $ROWS; do
  case "$r" in
    auth_redis) [ -n "$PUB2" ] || continue;; mhd) [ -n "$MT" ] || continue;;
    auth_base|ng_rgb) [ -n "$PUBB" ] || continue;;
  esac
  active_rows="$active_rows $r"
done
echo "wrk -t2 -c64 -d$DURATION --latency per row, $ROUNDS interleaved rounds (load generator on the same machine)"
n=$(echo $active_rows | wc -w)
for round in $(seq 1 "$ROUNDS"); do
  # rotate the order each round: no row always runs first or last
  set -- $active_rows
  k=$(( (round - 1) % n )); while [ "$k" -gt 0 ]; do x=$1; shift; set -- "$@" "$x"; k=$((k - 1)); done
  for r in "$@"; do
    out="$TMP/$r.$round.out"
    pids=$(pids_of "$r" | tr '\n' ' ')
    t0=$(ticks $pids)
    row_of "$r"
    if [ "$r" = nginx ] || [ "$r" = mhd ]; then
      wrk -t2 -c64 -d"$DURATION" --latency "$URL" >"$out" 2>&1
    else
      wrk -t2 -c64 -d"$DURATION" --latency -H "Cookie: rolegate=$TOKEN" "$URL" >"$out" 2>&1
    fi
    t1=$(ticks $pids)
    rq=$(reqs_of "$out")
    echo "$(rps_of "$out")" >>"$TMP/$r.rps"
    echo "$(p99_ms "$out")" >>"$TMP/$r.p99"
    awk -v d="$((t1 - t0))" -v hz="$HZ" -v n="$rq" 'BEGIN { if (n > 0) printf "%.1f\n", d * 1e6 / hz / n }' >>"$TMP/$r.cpu"
    e=$(errs_of "$out"); [ -n "$e" ] && echo "  round $round $(label_of "$r"): $e"
    printf '  round %d %-30s %10s req/s\n' "$round" "$(label_of "$r")" "$(rps_of "$out")"
  done
done

echo "results (medians of $ROUNDS rounds):"
printf '  %-30s %10s %9s %14s\n' row req/s "p99 ms" "server us/req"
for r in $active_rows; do
  eval "M_$r=$(median <"$TMP/$r.rps")"
  printf '  %-30s %10s %9s %14s\n' "$(label_of "$r")" "$(median <"$TMP/$r.rps")" \
    "$(median <"$TMP/$r.p99")" "$(median <"$TMP/$r.cpu")"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# ratio_line TEXT ROW_A ROW_B [NOTE]: "TEXT = A/Bx NOTE", only when both rows
# were measured (a ROWS subset leaves the others' M_ unset: under set -u a
# plain $M_row stopped the script with "parameter not set")
ratio_line() {
  eval "a=\${M_$2:-} b=\${M_$3:-}"
  [ -n "$a" ] && [ -n "$b" ] && echo "  $1 = $(ratio "$a" "$b")x${4:+ $4}"
  return 0
}
echo "ratios (same run, medians):"
ratio_line "rolegate /auth direct / nginx return 200      " auth nginx "(target >= 0.8x)"
ratio_line "nginx->rolegate / nginx->nginx (forward auth) " ng_rg ng_ng "(target >= 0.9x)"
ratio_line "libmicrohttpd trivial / nginx return 200      " mhd nginx "(the server library's floor)"
ratio_line "rolegate /auth direct / libmicrohttpd trivial " auth mhd
ratio_line "/auth with Redis / /auth without              " auth_redis auth "(target: no measurable drop)"
ratio_line "this build / BASE_BIN, /auth direct           " auth auth_base "(req/s)"
ratio_line "this build / BASE_BIN, behind nginx           " ng_rg ng_rgb "(req/s)"
ratio_line "BASE_BIN /auth direct / nginx return 200      " auth_base nginx
ratio_line "nginx->BASE_BIN / nginx->nginx                " ng_rgb ng_ng
if [ -s "$TMP/auth.p99" ]; then
  P=$(median <"$TMP/auth.p99")
  echo "  rolegate /auth p99 = $P ms (target < 5 ms): $(awk -v p="$P" 'BEGIN { print (p + 0 < 5) ? "MET" : "NOT MET" }')"
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

if [ -x "$BUILD/bench/bench_session" ]; then
  echo "ES256 sign / verify (bench_session):"
  "$BUILD/bench/bench_session" | grep -A3 '^ES256' || true
else
  echo "ES256 sign / verify: build $BUILD/bench/bench_session (make BUILD=$BUILD bench) for the figures"
fi
