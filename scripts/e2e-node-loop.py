#!/usr/bin/env python3
"""A bounded HTTP request loop for scripts/e2e-node.sh, run from the netns outside the node.

  e2e-node-loop.py URL HOST MODE OUT
MODE new:       one new TCP connection per request (Connection: close).
MODE keepalive: one persistent connection; when a reused connection turns out closed before any
                byte of the answer (the proxy closed it while idle, or the agent was killed), the
                request is sent again on a new connection, as HTTP clients do for idempotent
                requests (RFC 9112, 9.3.1): that is a reconnect, not a failure.
Every request that gets no 200 is a failure. Runs until OUT.stop exists (at most 30 minutes),
one request every 20 ms, then writes "requests N failures F reconnects R max_latency_ms L" to OUT
and the first failures to OUT.errors.
"""
import http.client
import os
import socket
import sys
import time
import urllib.parse

url, host, mode, out = sys.argv[1:5]
u = urllib.parse.urlsplit(url)
# Generous: a SYN that finds no listener (an agent restarting) is dropped and retransmitted.
TIMEOUT = 15.0
deadline = time.monotonic() + 1800
requests = failures = reconnects = 0
max_latency = 0.0
errors = []
conn = None


def connect():
    return http.client.HTTPConnection(u.hostname, u.port or 80, timeout=TIMEOUT)


def once(c, reused):
    headers = {"Host": host}
    if mode == "new":
        headers["Connection"] = "close"
    c.request("GET", u.path or "/", headers=headers)
    r = c.getresponse()
    body = r.read()
    return r.status, body, r.getheader("connection", "")


while time.monotonic() < deadline and not os.path.exists(out + ".stop"):
    started = time.monotonic()
    requests += 1
    try:
        if mode == "new":
            c = connect()
            try:
                status, body, _ = once(c, False)
            finally:
                c.close()
        else:
            reused = conn is not None
            if conn is None:
                conn = connect()
            try:
                status, body, connection = once(conn, reused)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, http.client.BadStatusLine) as e:
                if not reused:
                    raise
                conn.close()
                reconnects += 1
                conn = connect()
                status, body, connection = once(conn, False)
            if connection.lower() == "close":
                conn.close()
                conn = None
        if status != 200:
            failures += 1
            errors.append("%.3f status %d %r" % (time.time(), status, body[:80]))
    except Exception as e:  # noqa: BLE001 - every other outcome is a failure
        failures += 1
        errors.append("%.3f %s: %s" % (time.time(), type(e).__name__, e))
        if conn is not None:
            conn.close()
            conn = None
    latency = time.monotonic() - started
    max_latency = max(max_latency, latency)
    time.sleep(max(0.0, 0.02 - latency))

with open(out + ".errors", "w") as f:
    f.write("\n".join(errors[:50]) + ("\n" if errors else ""))
with open(out, "w") as f:
    f.write("requests %d failures %d reconnects %d max_latency_ms %d\n" % (requests, failures, reconnects, max_latency * 1000))
