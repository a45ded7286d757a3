import BPFMaps
import FileSource
import Foundation
import KubeAPI
import KubeModels
import L7Proxy
import LinearRegex
import LoadBalancer
import Views

/// The entry points the libFuzzer targets (fuzz/) call with each input, and the corpus regression
/// test (Tests/FuzzCorpusTests) calls with every checked-in input. Each must return for any bytes:
/// errors are fine, a trap or a crash is a bug. Where a property holds for every input (the
/// translator is deterministic), it is checked with `precondition`, so the fuzzer reports it.
public enum FuzzEntries {
    /// The targets by name (the corpus directory names under fuzz/corpus).
    public static let targets: [String: @Sendable (Data) -> Void] = [
        "yaml-file": yamlFile,
        "watch-stream": watchStream,
        "kubeconfig": kubeconfig,
        "translator": translator,
        "lb-listing": lbListing,
        "proxy-request": proxyRequest,
        "regex": regex,
    ]

    /// The YAML directory loader on one file's bytes, then the translator on what it loaded.
    public static func yamlFile(_ data: Data) {
        guard let loaded = try? FileSource.load(data: data, file: "fuzz.yaml") else { return }
        let merged = FileSource.merge([("fuzz.yaml", loaded)])
        _ = Translator.translate(merged.snapshot, options: TranslatorOptions(nodeName: "node-a", nodeAddresses: [.v4(IPv4Address(192, 0, 2, 10))]))
    }

    /// Watch-stream framing and event decoding: the first bytes choose chunk sizes, the rest is
    /// the stream, split into lines and decoded as Service and EndpointSlice events.
    public static func watchStream(_ data: Data) {
        let input = FuzzInput(data)
        let chunkSizes = (0..<4).map { _ in Int(input.byte() % 64) + 1 }
        let body = input.rest
        var splitter = LineSplitter(maxLineLength: 1 << 16)
        var offset = 0, n = 0
        var lines: [[UInt8]] = []
        while offset < body.count {
            let size = min(chunkSizes[n % chunkSizes.count], body.count - offset)
            n += 1
            guard let done = try? splitter.append(body[offset..<offset + size]) else { return }
            lines += done
            offset += size
        }
        if let rest = splitter.finish() { lines.append(rest) }
        for line in lines {
            precondition(!line.isEmpty && !line.contains(UInt8(ascii: "\n")), "LineSplitter returned an empty line or one with a newline")
            _ = try? decodeWatchEvent(Service.self, line: line)
            _ = try? decodeWatchEvent(EndpointSlice.self, line: line)
        }
    }

    /// The kubeconfig parser, then the cluster config of every context.
    public static func kubeconfig(_ data: Data) {
        guard let config = try? KubeConfig(yaml: String(decoding: data, as: UTF8.self), directory: "/nonexistent-portway-fuzz") else { return }
        for name in config.contexts.keys.sorted() { _ = try? config.clusterConfig(context: name) }
    }

    /// The translator over a small snapshot derived from the bytes (structured input: names,
    /// addresses and ports from small vocabularies with edge cases), rendered as JSON and table.
    public static func translator(_ data: Data) {
        let input = FuzzInput(data)
        let snapshot = input.snapshot()
        let options = TranslatorOptions(
            nodeName: input.pick(["node-a", "node-b", ""]), nodeAddresses: input.list(max: 3) { input.pick(FuzzInput.nodeAddresses) },
            endpointsSource: input.bool() ? .endpointSlices : .endpoints)
        let state = Translator.translate(snapshot, options: options)
        precondition(state == Translator.translate(snapshot, options: options), "the translator is not deterministic")
        _ = JSONValue.object(json(for: state)).rendered()
        _ = renderLBTable(state)
    }

    /// The L7 proxy's request side (codec, limits, connection state machine) on in-memory channels:
    /// the first byte chooses where the bytes are split into two reads, the second whether upstream
    /// connections are answered and with how many of the following bytes; the rest is what the
    /// client sends. The proxy may answer or close, never crash.
    public static func proxyRequest(_ data: Data) {
        let input = FuzzInput(data)
        let split = Int(input.byte())
        let answered = input.bool()
        let responseLength = answered ? Int(input.byte()) : 0
        let response = (0..<responseLength).map { _ in input.byte() }
        let request = input.rest
        _ = fuzzProxyRequestParser(request, splitAt: split % (request.count + 1), upstreamResponse: answered ? response : nil)
    }

    /// The regular-expression engine of Gateway matches: the first byte says where the pattern ends
    /// (the rest, up to 64 bytes, is the input), the pattern is compiled and, when accepted, matched
    /// whole and unanchored against the input and a few fixed ones. Refusals are fine; a trap, a
    /// hang (libFuzzer's -timeout) or disagreement between the two answers is a bug: whatever
    /// matches the whole input also matches a part of it.
    public static func regex(_ data: Data) {
        let bytes = Array(data)
        guard let first = bytes.first else { return }
        let body = bytes.dropFirst()
        let cut = body.startIndex + min(Int(first), body.count)
        let pattern = String(decoding: body[body.startIndex..<cut], as: UTF8.self)
        let input = String(decoding: body[cut...].prefix(64), as: UTF8.self)
        guard let compiled = try? LinearRegex(pattern) else { return }
        precondition(compiled.programSize <= LinearRegex.Limits.programSize, "program over the size limit")
        for text in [input, "", "/", String(repeating: "a", count: 40), "/files/a/b/c.json"] {
            let whole = compiled.wholeMatch(text)
            let part = compiled.containsMatch(text)
            precondition(!whole || part, "\(pattern.debugDescription) matches \(text.debugDescription) whole but no part of it")
        }
    }

    /// The `bpf lb list` reader over map contents derived from the bytes (corrupt, foreign, half-written).
    public static func lbListing(_ data: Data) {
        let input = FuzzInput(data)
        var state = ProgrammedState()
        for _ in 0..<Int(input.byte() % 6) {
            let key = ServiceMapKey(
                address: IPv4Address(input.pick([0x0A00_0001, 0, 0xFFFF_FFFF, input.uint32()])), port: input.uint16(),
                proto: input.pick([6, 17, 132, input.byte()]), scope: input.pick([0, 1, input.byte()]))
            var entries = ServiceEntries()
            if input.byte() % 4 != 0 {
                entries.master = MasterEntry(
                    count: input.pick([0, 1, 2, 3, 65_535, input.uint16()]), qcount: input.pick([0, 1, 65_535, input.uint16()]),
                    revNatID: input.pick([1, 2, input.uint16()]), flags: input.byte(), flags2: input.byte(), union: input.uint32())
            }
            for _ in 0..<Int(input.byte() % 8) {
                entries.slots[input.pick([1, 2, 3, 4, 65_535, input.uint16()])] = input.pick([1, 2, 3, input.uint32()])
            }
            state.services[key] = entries
        }
        for _ in 0..<Int(input.byte() % 5) {
            state.backends[input.pick([1, 2, 3, input.uint32()])] = BackendEntry(
                address: IPv4Address(input.uint32()), port: input.uint16(), proto: input.pick([6, 17, 132, input.byte()]),
                state: input.pick([0, 1, 2, 3, input.byte()]), zone: input.byte())
        }
        for _ in 0..<Int(input.byte() % 3) {
            state.reverseNAT[input.pick([1, 2, input.uint16()])] = RevNatEntry(address: IPv4Address(input.uint32()), port: input.uint16())
        }
        let listing = LBListing(state)
        _ = listing.table
        _ = JSONValue.object(listing.json).rendered()
    }
}

/// Reads structured values from fuzzer bytes; past the end every read is zero, so any input is a
/// valid (if small) description. A class, so nested builders can share the read position.
final class FuzzInput {
    private let bytes: [UInt8]
    private var index = 0

    init(_ data: Data) { bytes = Array(data) }

    var rest: [UInt8] { index < bytes.count ? Array(bytes[index...]) : [] }

    func byte() -> UInt8 {
        guard index < bytes.count else { return 0 }
        defer { index += 1 }
        return bytes[index]
    }

    func uint16() -> UInt16 { UInt16(byte()) << 8 | UInt16(byte()) }
    func uint32() -> UInt32 { UInt32(uint16()) << 16 | UInt32(uint16()) }
    func bool() -> Bool { byte() & 1 == 1 }

    func pick<T>(_ choices: [T]) -> T { choices[Int(byte()) % choices.count] }

    func list<T>(max: Int, _ element: () -> T) -> [T] { (0..<Int(byte()) % (max + 1)).map { _ in element() } }

    func optional<T>(_ value: () -> T) -> T? { bool() ? value() : nil }

    static let nodeAddresses: [IPAddress] = ["192.0.2.10", "192.0.2.11", "fd00::10", "0.0.0.0"].compactMap { IPAddress($0) }
    static let addresses = ["10.96.0.10", "10.96.0.11", "10.244.1.10", "10.244.2.12", "192.0.2.10", "fd00::1", "::ffff:10.0.0.4",
                            "None", "", "256.1.1.1", "10.0.0.01", "0.0.0.0", "255.255.255.255", " 10.0.0.1", "::"]
    static let names = ["web", "api", "dns", "", "a.b", "x/y", String(repeating: "n", count: 300)]

    func int() -> Int { pick([0, 1, 53, 80, 443, 8080, 30080, 65_535, 65_536, -1, Int.max, Int.min, Int(uint16())]) }
    func name() -> String { pick(Self.names) }
    func namespace() -> String? { pick(["demo", "default", "", nil, "other"]) }
    func address() -> String { pick(Self.addresses) }
    func proto() -> String? { pick(["TCP", "UDP", "SCTP", nil, "tcp", "ICMP", ""]) }

    func snapshot() -> ClusterSnapshot {
        var snapshot = ClusterSnapshot()
        snapshot.services = list(max: 3) { service() }
        snapshot.endpointSlices = list(max: 3) { slice() }
        snapshot.endpoints = list(max: 2) { endpoints() }
        snapshot.nodes = list(max: 2) {
            Node(metadata: ObjectMeta(name: pick(["node-a", "node-b", ""])), status: NodeStatus(addresses: list(max: 3) {
                NodeAddress(type: pick(["InternalIP", "ExternalIP", "Hostname"]), address: address())
            }))
        }
        return snapshot
    }

    func service() -> Service {
        let spec = ServiceSpec(
            type: pick(["ClusterIP", "NodePort", "LoadBalancer", "ExternalName", nil, "Bogus"]),
            clusterIP: optional { address() }, clusterIPs: optional { list(max: 3) { address() } },
            ports: optional {
                list(max: 4) {
                    ServicePort(
                        name: pick(["http", "dns", nil, ""]), protocol: proto(), port: int(),
                        targetPort: pick([nil, .int(int()), .string("http"), .string("8080"), .string("")]),
                        nodePort: optional { int() }, appProtocol: nil)
                }
            },
            externalIPs: optional { list(max: 2) { address() } },
            externalTrafficPolicy: pick(["Cluster", "Local", nil, "Bogus"]), internalTrafficPolicy: pick(["Cluster", "Local", nil]),
            sessionAffinity: pick(["None", "ClientIP", nil, "Bogus"]),
            sessionAffinityConfig: optional { SessionAffinityConfig(clientIP: ClientIPConfig(timeoutSeconds: optional { int() })) },
            externalName: nil, selector: nil, loadBalancerClass: optional { pick(["portway", "other"]) },
            ipFamilies: optional { list(max: 2) { pick(["IPv4", "IPv6", "Bogus"]) } })
        let status = optional {
            ServiceStatus(loadBalancer: LoadBalancerStatus(ingress: list(max: 2) { LoadBalancerIngress(ip: optional { address() }, hostname: nil) }))
        }
        return Service(metadata: ObjectMeta(name: name(), namespace: namespace()), spec: spec, status: status)
    }

    func slice() -> EndpointSlice {
        let service = name()
        return EndpointSlice(
            metadata: ObjectMeta(
                name: service + "-" + pick(["a", "b"]), namespace: namespace(),
                labels: optional { [EndpointSlice.serviceNameLabel: service] }),
            addressType: pick(["IPv4", "IPv6", "FQDN", ""]),
            endpoints: optional {
                list(max: 4) {
                    Endpoint(
                        addresses: list(max: 2) { address() },
                        conditions: optional { EndpointConditions(ready: optional { bool() }, serving: optional { bool() }, terminating: optional { bool() }) },
                        nodeName: pick(["node-a", "node-b", nil]))
                }
            },
            ports: optional { list(max: 3) { EndpointPort(name: pick(["http", "dns", nil, ""]), protocol: proto(), port: optional { int() }) } })
    }

    func endpoints() -> Endpoints {
        Endpoints(metadata: ObjectMeta(name: name(), namespace: namespace()), subsets: optional {
            list(max: 2) {
                EndpointSubset(
                    addresses: optional { list(max: 3) { EndpointAddress(ip: address(), nodeName: pick(["node-a", nil])) } },
                    notReadyAddresses: optional { list(max: 2) { EndpointAddress(ip: address()) } },
                    ports: optional { list(max: 2) { EndpointPort(name: pick(["http", nil]), protocol: proto(), port: optional { int() }) } })
            }
        })
    }
}
