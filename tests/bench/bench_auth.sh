#!/bin/sh
# bench_auth.sh: requests/s and p99 of rolegate's /auth with a valid session
# cookie (the reverse proxy's per-request check, a token-cache hit), and in
# the same run of an nginx `return 200` location on the same machine as the
# baseline: wrk -t2 -c64 -d10s --latency on each. Prints both, the ratio
# and the p99s (target: /auth >= 50% of nginx, p99 < 5 ms), the ES256
# sign/verify cost from bench_session when built, and the machine. Issue 7:
# a second instance of the same deployment (same store, keys, base URL) with
# Redis configured (its own redis-server on a free port) answers the same
# cookie in the same run: /auth with Redis vs without (target: no drop).
# Env: BUILD (default build), DURATION (default 10s).
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
BIN="$PWD/$BUILD/rolegate"
DURATION=${DURATION:-10s}
[ -x "$BIN" ] || { echo "bench_auth: $BIN not built (make BUILD=$BUILD all)"; exit 1; }
command -v wrk >/dev/null || { echo "bench_auth: wrk missing (apt-get install wrk)"; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

echo "machine: $(uname -a)"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') x $(nproc)"

TMP=$(mktemp -d /tmp/rolegate-bench-auth.XXXXXX)
chmod 755 "$TMP"
RG_PID=""; NG_PID=""; RG2_PID=""; RD_PID=""
cleanup() {
  [ -n "$RG_PID" ] && kill "$RG_PID" 2>/dev/null && wait "$RG_PID" 2>/dev/null
  [ -n "$RG2_PID" ] && kill "$RG2_PID" 2>/dev/null && wait "$RG2_PID" 2>/dev/null
  [ -n "$RD_PID" ] && kill "$RD_PID" 2>/dev/null && wait "$RD_PID" 2>/dev/null
  [ -n "$NG_PID" ] && kill -QUIT "$NG_PID" 2>/dev/null && wait "$NG_PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
PUB=$(free_port); ADM=$(free_port); NGP=$(free_port)
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
level = warn
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

# the same deployment's second instance, with Redis
RDP=""; PUB2=""
if command -v redis-server >/dev/null; then
  RDP=$(free_port); PUB2=$(free_port); ADM2=$(free_port)
  redis-server --port "$RDP" --bind 127.0.0.1 --save "" --appendonly no >/dev/null 2>&1 &
  RD_PID=$!
  sed -e "s/^public_listen = .*/public_listen = 127.0.0.1:$PUB2/" \
      -e "s/^admin_listen = .*/admin_listen = 127.0.0.1:$ADM2/" \
      -e "s#^file = .*#file = $TMP/rolegate2.log#" "$TMP/rolegate.conf" >"$TMP/rolegate2.conf"
  printf '[redis]\nurl = redis://127.0.0.1:%s/0\n' "$RDP" >>"$TMP/rolegate2.conf"
  sleep 0.3
  (cd "$TMP" && ROLEGATE_ADMIN_KEY="$KEY" exec "$BIN" serve -c "$TMP/rolegate2.conf" \
     >"$TMP/stdout2" 2>"$TMP/stderr2") &
  RG2_PID=$!
  for i in $(seq 1 100); do
    [ "$(curl -s "http://127.0.0.1:$PUB2/readyz")" = '{"status":"ready"}' ] && break
    sleep 0.1
  done
  echo "second instance: $(curl -s "http://127.0.0.1:$PUB2/readyz") with Redis on port $RDP"
fi

USER_LINE=""; [ "$(id -u)" = 0 ] && USER_LINE="user root;"
mkdir -p "$TMP/ng"
cat >"$TMP/ng/nginx.conf" <<EOF
$USER_LINE
worker_processes 1;
pid $TMP/ng/nginx.pid;
error_log $TMP/ng/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $TMP/ng/cb; proxy_temp_path $TMP/ng/px;
    fastcgi_temp_path $TMP/ng/fc; uwsgi_temp_path $TMP/ng/uw; scgi_temp_path $TMP/ng/sc;
    server { listen 127.0.0.1:$NGP; location / { return 200; } }
}
EOF
"$NGINX" -p "$TMP/ng" -c "$TMP/ng/nginx.conf" -g 'daemon off;' &
NG_PID=$!
sleep 0.5

check=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: rolegate=$TOKEN" "http://127.0.0.1:$PUB/auth")
[ "$check" = 200 ] || { echo "bench_auth: /auth answered $check, not 200"; exit 1; }

run_wrk() { # $1 name, $2 url, [$3 header]
  if [ $# -ge 3 ]; then
    wrk -t2 -c64 -d"$DURATION" --latency -H "$3" "$2" >"$TMP/$1.out" 2>&1
  else
    wrk -t2 -c64 -d"$DURATION" --latency "$2" >"$TMP/$1.out" 2>&1
  fi
}
rps_of() { awk '/^Requests\/sec:/ {print $2}' "$TMP/$1.out"; }
p99_of() { awk '$1 == "99%" {print $2}' "$TMP/$1.out"; }
errs_of() { awk '/Non-2xx|Socket errors/ {print}' "$TMP/$1.out"; }
to_ms() { # wrk latency "812.00us" / "1.23ms" / "1.01s" -> ms
  echo "$1" | awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); print v/1000}
                   else if (v ~ /ms$/) {sub(/ms$/,"",v); print v+0}
                   else if (v ~ /s$/) {sub(/s$/,"",v); print v*1000} }'
}

echo "wrk -t2 -c64 -d$DURATION --latency (load generator on the same machine)"
run_wrk auth "http://127.0.0.1:$PUB/auth" "Cookie: rolegate=$TOKEN"
[ -n "$PUB2" ] && run_wrk auth_redis "http://127.0.0.1:$PUB2/auth" "Cookie: rolegate=$TOKEN"
run_wrk nginx "http://127.0.0.1:$NGP/"
A=$(rps_of auth); N=$(rps_of nginx); AP=$(p99_of auth); NP=$(p99_of nginx)
echo "rolegate /auth (valid cookie): $A requests/s, p99 $AP $(errs_of auth)"
echo "nginx return 200 (baseline):   $N requests/s, p99 $NP $(errs_of nginx)"
if [ -n "$PUB2" ]; then
  R=$(rps_of auth_redis)
  echo "rolegate /auth with Redis:     $R requests/s, p99 $(p99_of auth_redis) $(errs_of auth_redis)"
  echo "ratio: /auth with Redis = $(awk -v r="$R" -v a="$A" 'BEGIN { if (a > 0) printf "%.1f", 100 * r / a; else print "n/a" }')% of /auth without (target: no measurable drop)"
fi
RATIO=$(awk -v a="$A" -v n="$N" 'BEGIN { if (n > 0) printf "%.1f", 100 * a / n; else print "n/a" }')
APMS=$(to_ms "$AP")
echo "ratio: /auth = $RATIO% of nginx (target >= 50%); /auth p99 = ${APMS} ms (target < 5 ms)"
awk -v r="$RATIO" -v p="$APMS" 'BEGIN {
  print "verdict: throughput " ((r + 0 >= 50) ? "MET" : "NOT MET") ", p99 " ((p + 0 < 5) ? "MET" : "NOT MET") }'

if [ -x "$BUILD/bench/bench_session" ]; then
  echo "ES256 sign / verify (bench_session):"
  "$BUILD/bench/bench_session" | grep -A3 '^ES256' || true
else
  echo "ES256 sign / verify: build $BUILD/bench/bench_session (make BUILD=$BUILD bench) for the figures"
fi
