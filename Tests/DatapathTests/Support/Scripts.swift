/// Small Python programs the end-to-end tests run inside the namespaces (python3 is a Portway
/// dependency, see the Makefile). Written to a temporary directory by `Lab`.
enum Scripts {
    /// `httpbackend.py NAME PORT`: the Gateway tests' plain HTTP backend; answers every GET with
    /// `NAME xff=<X-Forwarded-For>` (keep-alive).
    static let httpBackend = #"""
        import http.server, sys
        name, port = sys.argv[1], int(sys.argv[2])
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def do_GET(self):
                body = f"{name} xff={self.headers.get('X-Forwarded-For', '-')}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def log_message(self, *args):
                pass
        server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
        print("ready", flush=True)
        server.serve_forever()
        """#

    /// `backend.py NAME PORT`: TCP and UDP echo on 0.0.0.0:PORT. Every request line / datagram is
    /// answered with `NAME PEER_IP:PEER_PORT LOCAL_IP:LOCAL_PORT` (what the backend saw), so tests
    /// can check DNAT (LOCAL is the backend's own address) and SNAT (PEER is the node). After the
    /// line `close` the backend closes the connection first.
    static let backend = #"""
        import socket, struct, sys, threading
        name, port = sys.argv[1], int(sys.argv[2])
        IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)

        def answer(peer, local):
            return f"{name} {peer[0]}:{peer[1]} {local[0]}:{local[1]}\n".encode()

        def serve_conn(c):
            with c:
                peer, local = c.getpeername(), c.getsockname()
                for line in c.makefile("rb"):
                    c.sendall(answer(peer, local))
                    if line == b"close\n":  # the server closes first (it keeps the TIME_WAIT socket)
                        c.shutdown(socket.SHUT_RDWR)
                        break

        def tcp(s):
            while True:
                c, _ = s.accept()
                threading.Thread(target=serve_conn, args=(c,), daemon=True).start()

        t = socket.socket()
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        t.bind(("0.0.0.0", port))
        t.listen(256)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        u.bind(("0.0.0.0", port))
        threading.Thread(target=tcp, args=(t,), daemon=True).start()
        print("ready", flush=True)
        while True:
            data, anc, _, peer = u.recvmsg(2048, 256)
            local = "0.0.0.0"
            for level, kind, blob in anc:
                if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                    local = socket.inet_ntoa(blob[8:12])
            u.sendto(answer(peer, (local, port)), peer)
        """#

    /// `client.py burst tcp|udp HOST PORT N`: N fresh connections (TCP) or connected sockets (UDP),
    /// one request each; prints JSON {"answers": [{"name", "seen_peer", "seen_local", "peer"}], "errors": [..]}.
    /// A connected UDP socket only accepts datagrams from HOST:PORT, and a TCP handshake only
    /// completes with it, so every answer proves the reply carried the frontend address.
    /// `client.py hold HOST PORT`: one TCP connection; each stdin line is sent and the answer printed.
    /// `client.py udpfrom HOST PORT N`: N unconnected UDP sockets, sendto + recvfrom; `peer` is the
    /// address the answer came from.
    /// `client.py probe tcp|udp HOST PORT [TIMEOUT]`: one attempt (1 s); prints `ok NAME`, `refused` or `timeout`.
    /// `client.py reuse HOST PORT SPORT N`: N TCP connections one after the other, all from source
    /// port SPORT; each sends `close`, reads the answer and waits for the server to close first (so
    /// the server side keeps the TIME_WAIT socket the next connection's SYN meets), then closes once
    /// its own FIN is acknowledged (the port is free again). Prints the `burst` JSON.
    static let client = #"""
        import json, socket, sys, time

        def once(proto, host, port, timeout=2.0):
            if proto == "tcp":
                s = socket.create_connection((host, port), timeout=timeout)
                try:
                    s.sendall(b"hello\n")
                    line = s.makefile("rb").readline().decode()
                    return line, "%s:%d" % s.getpeername()
                finally:
                    s.close()
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(timeout)
            s.connect((host, port))
            try:
                for _ in range(3):
                    s.send(b"hello\n")
                    try:
                        return s.recv(2048).decode(), "%s:%d" % s.getpeername()
                    except socket.timeout:
                        continue
                raise socket.timeout()
            finally:
                s.close()

        mode = sys.argv[1]
        if mode == "burst":
            proto, host, port, n = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
            answers, errors = [], []
            for _ in range(n):
                try:
                    line, peer = once(proto, host, port)
                    f = line.split()
                    answers.append({"name": f[0], "seen_peer": f[1], "seen_local": f[2], "peer": peer})
                except Exception as e:
                    errors.append(repr(e))
            print(json.dumps({"answers": answers, "errors": errors}), flush=True)
        elif mode == "udpfrom":
            # Unconnected UDP: sendto the frontend, report where the answer came from (recvfrom).
            host, port, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
            answers, errors = [], []
            for _ in range(n):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.settimeout(2.0)
                try:
                    s.sendto(b"hello\n", (host, port))
                    data, src = s.recvfrom(2048)
                    f = data.decode().split()
                    answers.append({"name": f[0], "seen_peer": f[1], "seen_local": f[2], "peer": "%s:%d" % src})
                except Exception as e:
                    errors.append(repr(e))
                finally:
                    s.close()
            print(json.dumps({"answers": answers, "errors": errors}), flush=True)
        elif mode == "probe":
            proto, host, port = sys.argv[2], sys.argv[3], int(sys.argv[4])
            timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
            try:
                line, _ = once(proto, host, port, timeout=timeout)
                print("ok " + line.split()[0], flush=True)
            except ConnectionRefusedError:
                print("refused", flush=True)
            except (socket.timeout, TimeoutError):
                print("timeout", flush=True)
        elif mode == "reuse":
            host, port, sport, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
            answers, errors = [], []
            for _ in range(n):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.settimeout(5.0)
                try:
                    s.bind(("0.0.0.0", sport))
                    s.connect((host, port))
                    s.sendall(b"close\n")
                    r = s.makefile("rb")
                    line = r.readline().decode()
                    peer = "%s:%d" % s.getpeername()
                    if r.read() != b"":
                        raise RuntimeError("the server sent more than one line")
                    s.shutdown(socket.SHUT_WR)
                    # LAST_ACK until the server acknowledges our FIN; then TCP_CLOSE (7).
                    deadline = time.monotonic() + 5
                    while s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] != 7:
                        if time.monotonic() > deadline:
                            raise TimeoutError("our FIN was never acknowledged")
                        time.sleep(0.001)
                    f = line.split()
                    answers.append({"name": f[0], "seen_peer": f[1], "seen_local": f[2], "peer": peer})
                except Exception as e:
                    errors.append(repr(e))
                finally:
                    s.close()
            print(json.dumps({"answers": answers, "errors": errors}), flush=True)
        elif mode == "hold":
            host, port = sys.argv[2], int(sys.argv[3])
            s = socket.create_connection((host, port), timeout=5)
            r = s.makefile("rb")
            print("connected %s:%d" % s.getpeername(), flush=True)
            for line in sys.stdin:
                try:
                    s.sendall(line.encode())
                    print(r.readline().decode().strip() or "EOF", flush=True)
                except Exception as e:
                    print("ERROR " + repr(e), flush=True)
            s.close()
        """#
}
