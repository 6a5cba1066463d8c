#!/usr/bin/env python3
"""A user of the load balancer while replicas restart: logs in once, then every 50 ms reads through
the load balancer with that session (GET /kuboard-api/auth/me and GET /kuboard-api/users in turn),
and every 20th tick logs in again on a new session. Runs until STOP_FILE exists (or --max-seconds),
then prints the figures as one JSON line and exits 0 only if no request failed and the first
session was never refused.

    lb_client.py --url http://127.0.0.1:PORT --password PW --stop-file F [--max-seconds 600]
"""
import argparse
import http.cookiejar
import json
import os
import sys
import time
import urllib.error
import urllib.request


def opener_with_cookies():
    jar = http.cookiejar.CookieJar()
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))


def request(opener, method, url, body=None, headers=None, timeout=5.0):
    """(status, body bytes, seconds); status 0 with the error text when no HTTP answer came."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    started = time.monotonic()
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read(), time.monotonic() - started
    except urllib.error.HTTPError as err:
        return err.code, err.read(), time.monotonic() - started
    except (urllib.error.URLError, OSError) as err:
        return 0, str(err).encode(), time.monotonic() - started


def login(url, password):
    opener = opener_with_cookies()
    status, body, seconds = request(
        opener, "POST", url + "/kuboard-api/auth/login", {"username": "admin", "password": password}
    )
    csrf = ""
    if status == 200:
        csrf = json.loads(body).get("csrf_token", "")
    return opener, status, body, seconds, csrf


def percentile(values, fraction):
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--interval", type=float, default=0.05)
    args = parser.parse_args()

    session, status, body, _, _ = login(args.url, args.password)
    if status != 200:
        print(json.dumps({"error": "first login failed", "status": status, "body": body.decode(errors="replace")}))
        return 1

    counts = {"reads": 0, "logins": 1, "failed": 0, "session_lost": 0}
    latencies = []
    failures = []
    started = time.monotonic()
    deadline = started + args.max_seconds
    tick = 0
    while not os.path.exists(args.stop_file) and time.monotonic() < deadline:
        tick += 1
        next_tick = time.monotonic() + args.interval
        if tick % 20 == 0:
            _, status, body, seconds, _ = login(args.url, args.password)
            counts["logins"] += 1
            what = "login"
        else:
            path = "/kuboard-api/auth/me" if tick % 2 else "/kuboard-api/users"
            status, body, seconds = request(session, "GET", args.url + path)
            counts["reads"] += 1
            what = "GET " + path
            if status == 401:
                counts["session_lost"] += 1
        latencies.append(seconds)
        if status != 200:
            counts["failed"] += 1
            if len(failures) < 20:
                failures.append(
                    {"t": round(time.monotonic() - started, 3), "what": what, "status": status,
                     "body": body.decode(errors="replace")[:200]}
                )
        pause = next_tick - time.monotonic()
        if pause > 0:
            time.sleep(pause)

    figures = dict(counts)
    figures["seconds"] = round(time.monotonic() - started, 1)
    figures["latency_ms_p50"] = round(percentile(latencies, 0.50) * 1000, 1)
    figures["latency_ms_p99"] = round(percentile(latencies, 0.99) * 1000, 1)
    figures["latency_ms_max"] = round(max(latencies, default=0.0) * 1000, 1)
    figures["failures"] = failures
    print(json.dumps(figures))
    ok = counts["failed"] == 0 and counts["session_lost"] == 0 and counts["reads"] > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
