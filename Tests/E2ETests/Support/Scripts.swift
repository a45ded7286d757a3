/// Small Python programs the local cluster runs in its namespaces (python3 is a Portway dependency).
enum Scripts {
    /// `pod.py NAME IP PORT`: an HTTP server on the Pod IP. `GET /` answers `NAME PEER_IP:PEER_PORT`
    /// (who the pod saw: the client itself, or a node after SNAT). Prints `ready` once listening.
    /// SIGTERM stops it as a well-behaved pod stops: it serves every connection that already
    /// reached it (accepted, or waiting in the listen backlog), then exits.
    static let pod = #"""
        import http.server, select, signal, socketserver, sys, threading
        name, ip, port = sys.argv[1], sys.argv[2], int(sys.argv[3])

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"
            def do_GET(self):
                body = f"{name} {self.client_address[0]}:{self.client_address[1]}\n".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def log_message(self, *args):
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = False
            block_on_close = True  # server_close() joins the request threads
            allow_reuse_address = True
            request_queue_size = 256

        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])  # threads inherit the mask
        server = Server((ip, port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        print("ready", flush=True)
        signal.sigwait([signal.SIGTERM])
        server.shutdown()
        while select.select([server.socket], [], [], 0)[0]:
            server.handle_request()  # connections already in the backlog are served, not reset
        server.server_close()
        """#

    /// `route_watch.py HOST:PORT HOSTNAME MAX_SECONDS`: requests `/` with that Host over one
    /// keep-alive connection (a new one after any failure), back to back, and prints
    /// `UNIX_TIME NAME` each time the answer changes: the pod's name for a 200, `http-CODE` for
    /// another status, `fail-REASON` when nothing answered. Prints `ready` first; exits after
    /// MAX_SECONDS (bounded).
    static let routeWatch = #"""
        import http.client, sys, time
        target, hostname, max_seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
        addr, port = target.rsplit(":", 1)
        deadline = time.time() + max_seconds
        conn, last = None, None
        print("ready", flush=True)
        while time.time() < deadline:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(addr, int(port), timeout=2)
                conn.request("GET", "/", headers={"Host": hostname})
                response = conn.getresponse()
                body = response.read().decode().strip()
                name = body.split(" ")[0] if response.status == 200 else "http-%d" % response.status
                if response.will_close:
                    conn.close()
                    conn = None
            except Exception as e:
                name = "fail-" + type(e).__name__
                if conn is not None:
                    conn.close()
                conn = None
            now = time.time()
            if name != last:
                print("%.6f %s" % (now, name), flush=True)
                last = name
        """#

    /// `client.py get HOST:PORT [TIMEOUT]`: one request; prints `ok NAME PEER` or `fail REASON`.
    /// `client.py loop MAX_SECONDS HOST:PORT...`: requests the targets round-robin, one fresh
    /// connection each, every 20 ms, until a line arrives on stdin or MAX_SECONDS pass (bounded);
    /// prints one JSON object: {"ok": N, "failures": ["target: reason"], "names": {target: [names in order]}}.
    static let client = #"""
        import json, socket, sys, threading, time

        def get(target, timeout):
            host, port = target.rsplit(":", 1)
            try:
                s = socket.create_connection((host, int(port)), timeout=timeout)
            except Exception as e:
                return None, type(e).__name__
            try:
                s.settimeout(timeout)
                s.sendall(b"GET / HTTP/1.0\r\nHost: e2e\r\n\r\n")
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.0 200"):
                    return None, "bad answer %r" % head[:40]
                return body.decode().strip(), None
            except Exception as e:
                return None, type(e).__name__
            finally:
                s.close()

        mode = sys.argv[1]
        if mode == "get":
            timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
            body, err = get(sys.argv[2], timeout)
            print(("ok " + body) if body else ("fail " + err), flush=True)
        elif mode == "loop":
            limit, targets = float(sys.argv[2]), sys.argv[3:]
            stop = threading.Event()
            threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
            ok, failures, names = 0, [], {t: [] for t in targets}
            print("started", flush=True)
            deadline, i = time.monotonic() + limit, 0
            while not stop.is_set() and time.monotonic() < deadline:
                t = targets[i % len(targets)]
                i += 1
                body, err = get(t, 2.0)
                if body:
                    ok += 1
                    names[t].append(body.split()[0])
                else:
                    failures.append("%s: %s" % (t, err))
                time.sleep(0.02)
            print(json.dumps({"ok": ok, "failures": failures, "names": names}), flush=True)
        """#

    /// `fwd.py tcp LISTEN_HOST LISTEN_PORT UNIX_PATH` or `fwd.py unix UNIX_PATH HOST PORT`: a byte
    /// forwarder between a TCP port and a Unix socket. A Unix socket is a file, so it joins network
    /// namespaces: an agent in a node namespace reaches the API server on the host's loopback.
    static let forwarder = #"""
        import os, socket, sys, threading

        def pump(a, b):
            try:
                while True:
                    data = a.recv(65536)
                    if not data:
                        break
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        def nodelay(s):
            # Each piece forwarded at once: with Nagle, a watch event split over two reads waits
            # for the ACK of the first, which the agent delays (~40 ms a hop).
            if s.family != socket.AF_UNIX:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def serve(listener, connect):
            while True:
                c, _ = listener.accept()
                nodelay(c)
                try:
                    upstream = connect()
                except OSError:
                    c.close()
                    continue
                threading.Thread(target=pump, args=(c, upstream), daemon=True).start()
                threading.Thread(target=pump, args=(upstream, c), daemon=True).start()

        if sys.argv[1] == "tcp":
            host, port, path = sys.argv[2], int(sys.argv[3]), sys.argv[4]
            l = socket.socket()
            l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            l.bind((host, port))
            def connect():
                u = socket.socket(socket.AF_UNIX)
                u.connect(path)
                return u
        else:
            path, host, port = sys.argv[2], sys.argv[3], int(sys.argv[4])
            if os.path.exists(path):
                os.unlink(path)
            l = socket.socket(socket.AF_UNIX)
            l.bind(path)
            def connect():
                u = socket.create_connection((host, port), timeout=5)
                nodelay(u)
                u.settimeout(None)  # watches stay quiet for long stretches
                return u
        l.listen(128)
        print("ready", flush=True)
        serve(l, connect)
        """#
}
