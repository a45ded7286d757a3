#!/usr/bin/env python3
"""A bounded HTTP request loop for scripts/e2e-node.sh, run from the netns outside the node.

  e2e-node-loop.py URL HOST MODE OUT
MODE new:       one new TCP connection per request (Connection: close).
MODE keepalive: one persistent connection; when a reused connection turns out closed before any
                byte of the answer (the proxy closed it while idle), the request is sent again on
                a new connection, as HTTP clients do (RFC 9112, 9.3.1): a reconnect.
A GET whose new connection was accepted but then reset, closed or silent for 5 s before the first
byte of an answer (a proxy killed, or stopping, with the request in flight: nothing can answer it)
is sent once more on a new connection, as RFC 9110, 9.2.2 allows for idempotent requests: a retry,
counted. Connecting may take up to 10 s (a SYN the datapath drops while no proxy listens is
retransmitted after 1 s, then 3 s). Every request that still gets no 200 is a failure. Runs until
OUT.stop exists (at most 30 minutes), one request every 20 ms, then writes "requests N failures F
reconnects R retries T max_latency_ms L" to OUT and the failures and retries to OUT.errors.
"""
import http.client
import os
import socket
import sys
import time
import urllib.parse

url, host, mode, out = sys.argv[1:5]
u = urllib.parse.urlsplit(url)
CONNECT_TIMEOUT = 10.0  # SYN retransmissions at 1, 3 and 7 s
ANSWER_TIMEOUT = 5.0
deadline = time.monotonic() + 1800
requests = failures = reconnects = retries = 0
max_latency = 0.0
errors = []
conn = None


def connect():
    c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=CONNECT_TIMEOUT)
    c.connect()
    c.sock.settimeout(ANSWER_TIMEOUT)
    return c


IN_FLIGHT = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, http.client.BadStatusLine, TimeoutError)


def fresh():
    """One request on a new connection; once more on another if it was lost in flight."""
    global retries
    for attempt in (1, 2):
        c = connect()  # a connect failure is a failure, never retried
        try:
            return once(c, False)
        except IN_FLIGHT as e:
            if attempt == 2:
                raise
            retries += 1
            errors.append("%.3f retried: %s: %s" % (time.time(), type(e).__name__, e))
        finally:
            c.close()


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
            status, body, _ = fresh()
        else:
            if conn is None:
                conn = connect()
                try:
                    status, body, connection = once(conn, False)
                except IN_FLIGHT:
                    conn.close()
                    conn = None
                    status, body, connection = fresh()
            else:
                try:
                    status, body, connection = once(conn, True)
                except IN_FLIGHT:
                    conn.close()
                    conn = None
                    reconnects += 1
                    status, body, connection = fresh()
            if conn is None:
                connection = "close"
            if connection.lower() == "close" and conn is not None:
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
    f.write("requests %d failures %d reconnects %d retries %d max_latency_ms %d\n" % (requests, failures, reconnects, retries, max_latency * 1000))
