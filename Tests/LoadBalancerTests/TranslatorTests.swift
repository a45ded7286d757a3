import KubeModels
import Testing
@testable import LoadBalancer

/// One translation: input, options and the expected entries (see `lines`) and warnings (see `warningLines`).
struct TranslationCase: Sendable, CustomTestStringConvertible {
    var name: String
    var snapshot: ClusterSnapshot
    var options: TranslatorOptions = nodeA
    var expected: [String]
    var warnings: [String] = []
    var testDescription: String { name }
}

// Three endpoints of demo/web: one on node-a, one on node-b, one terminating on node-b.
private let webSlice = slice("web-abc12", endpoints: [
    ep("10.244.1.10", node: "node-a", ready: true, serving: true, terminating: false),
    ep("10.244.2.11", node: "node-b", ready: true),
    ep("10.244.2.12", node: "node-b", ready: false, serving: true, terminating: true),
])
private let all3 = "10.244.1.10:8080, 10.244.2.11:8080, 10.244.2.12:8080 (terminating)"
private let localOnly = "10.244.1.10:8080"
private let clusterIP = "10.96.0.10:80/TCP ClusterIP [ClusterIP, non-routable]"
private let twoNodes = TranslatorOptions(
    nodeName: "node-a",
    nodeAddresses: [IPAddress("192.0.2.10")!, IPAddress("198.51.100.7")!, IPAddress("fd00::1")!, IPAddress("192.0.2.10")!]
)

private let ruleCases: [TranslationCase] = [
    // Rule 1: ClusterIP.
    TranslationCase(
        name: "ClusterIP from spec.clusterIP",
        snapshot: ClusterSnapshot(services: [service("web", clusterIP: "10.96.0.10")], endpointSlices: [webSlice]),
        expected: ["\(clusterIP) -> \(all3)"]
    ),
    TranslationCase(
        name: "ClusterIP: every IPv4 clusterIPs entry, IPv6 ignored, clusterIPs preferred over clusterIP",
        snapshot: ClusterSnapshot(
            services: [service("web", clusterIP: "10.96.0.99", clusterIPs: ["10.96.0.10", "fd00::10", "10.96.0.11"])],
            endpointSlices: [webSlice]
        ),
        expected: ["\(clusterIP) -> \(all3)", "10.96.0.11:80/TCP ClusterIP [ClusterIP, non-routable] -> \(all3)"]
    ),
    TranslationCase(
        name: "ClusterIP: one frontend per port, each with its own endpoint port",
        snapshot: ClusterSnapshot(
            services: [service("web", clusterIP: "10.96.0.10", ports: [
                port(80, name: "http", target: .int(8080)), port(443, name: "https", target: .int(8443)),
            ])],
            endpointSlices: [slice("web-1", ports: [eport(8080), eport(8443, name: "https")], endpoints: [ep("10.244.1.10")])]
        ),
        expected: [
            "\(clusterIP) -> 10.244.1.10:8080",
            "10.96.0.10:443/TCP ClusterIP [ClusterIP, non-routable] -> 10.244.1.10:8443",
        ]
    ),
    TranslationCase(
        name: "ClusterIP without backends still gets a frontend",
        snapshot: ClusterSnapshot(services: [service("web", clusterIP: "10.96.0.10")]),
        expected: ["\(clusterIP) ->"]
    ),
    // Rule 2: NodePort.
    TranslationCase(
        name: "NodePort: surrogate plus one frontend per node IPv4 address (deduplicated, IPv6 ignored)",
        snapshot: ClusterSnapshot(
            services: [service("web", type: "NodePort", clusterIP: "10.96.0.10", ports: [port(80, name: "http", target: .int(8080), nodePort: 30080)])],
            endpointSlices: [webSlice]
        ),
        options: twoNodes,
        expected: [
            "0.0.0.0:30080/TCP NodePort [NodePort, non-routable] -> \(all3)",
            "\(clusterIP) -> \(all3)",
            "192.0.2.10:30080/TCP NodePort [NodePort] -> \(all3)",
            "198.51.100.7:30080/TCP NodePort [NodePort] -> \(all3)",
        ]
    ),
    TranslationCase(
        name: "NodePort: a port without nodePort (or nodePort 0) gets no NodePort frontend",
        snapshot: ClusterSnapshot(
            services: [service("web", type: "NodePort", clusterIP: "10.96.0.10", ports: [
                port(80, name: "http", nodePort: 30080), port(81, name: "b"), port(82, name: "c", nodePort: 0),
            ])]
        ),
        expected: [
            "0.0.0.0:30080/TCP NodePort [NodePort, non-routable] ->",
            "\(clusterIP) ->",
            "10.96.0.10:81/TCP ClusterIP [ClusterIP, non-routable] ->",
            "10.96.0.10:82/TCP ClusterIP [ClusterIP, non-routable] ->",
            "192.0.2.10:30080/TCP NodePort [NodePort] ->",
        ]
    ),
    TranslationCase(
        name: "ClusterIP Service ignores nodePort and load-balancer ingress",
        snapshot: ClusterSnapshot(services: [service(
            "web", clusterIP: "10.96.0.10", ports: [port(80, name: "http", nodePort: 30080)], ingress: [LoadBalancerIngress(ip: "203.0.113.5")]
        )]),
        expected: ["\(clusterIP) ->"]
    ),
    TranslationCase(
        name: "NodePort with no clusterIP in the object (offline files): NodePort frontends only",
        snapshot: ClusterSnapshot(
            services: [service("web", type: "NodePort", ports: [port(80, name: "http", target: .int(8080), nodePort: 30080)])],
            endpointSlices: [webSlice]
        ),
        expected: [
            "0.0.0.0:30080/TCP NodePort [NodePort, non-routable] -> \(all3)",
            "192.0.2.10:30080/TCP NodePort [NodePort] -> \(all3)",
        ]
    ),
    // Rule 3: LoadBalancer and ExternalIPs; rule 6: affinity.
    TranslationCase(
        name: "LoadBalancer + ExternalIPs + ClientIP affinity with the default timeout",
        snapshot: ClusterSnapshot(
            services: [service(
                "web", type: "LoadBalancer", clusterIP: "10.96.0.10", ports: [port(80, name: "http", nodePort: 30080)],
                externalIPs: ["198.51.100.20"], affinity: "ClientIP",
                ingress: [
                    LoadBalancerIngress(ip: "203.0.113.6", hostname: "a.example.com"), LoadBalancerIngress(hostname: "lb.example.com"),
                    LoadBalancerIngress(ip: "203.0.113.5"), LoadBalancerIngress(ip: "2001:db8::5"),
                ]
            )],
            endpointSlices: [webSlice]
        ),
        expected: [
            "0.0.0.0:30080/TCP NodePort [NodePort, sessionAffinity, non-routable] (affinity 10800) -> \(all3)",
            "10.96.0.10:80/TCP ClusterIP [ClusterIP, sessionAffinity, non-routable] (affinity 10800) -> \(all3)",
            "192.0.2.10:30080/TCP NodePort [NodePort, sessionAffinity] (affinity 10800) -> \(all3)",
            "198.51.100.20:80/TCP ExternalIPs [ExternalIPs, sessionAffinity] (affinity 10800) -> \(all3)",
            "203.0.113.5:80/TCP LoadBalancer [LoadBalancer, sessionAffinity] (affinity 10800) -> \(all3)",
            "203.0.113.6:80/TCP LoadBalancer [LoadBalancer, sessionAffinity] (affinity 10800) -> \(all3)",
        ]
    ),
    TranslationCase(
        name: "LoadBalancer without node ports + externalTrafficPolicy Local + timeout 60",
        snapshot: ClusterSnapshot(
            services: [service(
                "web", type: "LoadBalancer", clusterIP: "10.96.0.10", externalIPs: ["198.51.100.20"], etp: "Local",
                affinity: "ClientIP", timeout: 60, ingress: [LoadBalancerIngress(ip: "203.0.113.5")]
            )],
            endpointSlices: [webSlice]
        ),
        expected: [
            "10.96.0.10:80/TCP ClusterIP [ClusterIP, sessionAffinity, non-routable] (affinity 60) -> \(all3)",
            "198.51.100.20:80/TCP ExternalIPs [ExternalIPs, Local, sessionAffinity] (affinity 60) -> \(localOnly)",
            "203.0.113.5:80/TCP LoadBalancer [LoadBalancer, Local, sessionAffinity] (affinity 60) -> \(localOnly)",
        ]
    ),
    TranslationCase(
        name: "ExternalIPs on a ClusterIP Service",
        snapshot: ClusterSnapshot(
            services: [service("web", clusterIP: "10.96.0.10", externalIPs: ["198.51.100.20", "198.51.100.20", "fd00::20"])],
            endpointSlices: [webSlice]
        ),
        expected: ["\(clusterIP) -> \(all3)", "198.51.100.20:80/TCP ExternalIPs [ExternalIPs] -> \(all3)"]
    ),
    // Rule 5: traffic policies.
    TranslationCase(
        name: "NodePort + externalTrafficPolicy Local: external frontends keep local backends, ClusterIP keeps all",
        snapshot: ClusterSnapshot(
            services: [service("web", type: "NodePort", clusterIP: "10.96.0.10", ports: [port(80, name: "http", nodePort: 30080)], etp: "Local")],
            endpointSlices: [webSlice]
        ),
        expected: [
            "0.0.0.0:30080/TCP NodePort [NodePort, Local, non-routable] -> \(localOnly)",
            "\(clusterIP) -> \(all3)",
            "192.0.2.10:30080/TCP NodePort [NodePort, Local] -> \(localOnly)",
        ]
    ),
    TranslationCase(
        name: "externalTrafficPolicy Local on a node without local backends: no backends",
        snapshot: ClusterSnapshot(
            services: [service("web", type: "NodePort", ports: [port(80, name: "http", nodePort: 30080)], etp: "Local")],
            endpointSlices: [webSlice]
        ),
        options: TranslatorOptions(nodeName: "node-c", nodeAddresses: [IPAddress("192.0.2.30")!]),
        expected: [
            "0.0.0.0:30080/TCP NodePort [NodePort, Local, non-routable] ->",
            "192.0.2.30:30080/TCP NodePort [NodePort, Local] ->",
        ]
    ),
    TranslationCase(
        name: "externalTrafficPolicy Local keeps a local terminating backend",
        snapshot: ClusterSnapshot(
            services: [service("web", type: "NodePort", ports: [port(80, name: "http", nodePort: 30080)], etp: "Local")],
            endpointSlices: [webSlice]
        ),
        options: TranslatorOptions(nodeName: "node-b"),
        expected: ["0.0.0.0:30080/TCP NodePort [NodePort, Local, non-routable] -> 10.244.2.11:8080, 10.244.2.12:8080 (terminating)"]
    ),
    TranslationCase(
        name: "internalTrafficPolicy Local: ClusterIP keeps local backends, NodePort keeps all",
        snapshot: ClusterSnapshot(
            services: [service("web", type: "NodePort", clusterIP: "10.96.0.10", ports: [port(80, name: "http", nodePort: 30080)], itp: "Local")],
            endpointSlices: [webSlice]
        ),
        expected: [
            "0.0.0.0:30080/TCP NodePort [NodePort, non-routable] -> \(all3)",
            "10.96.0.10:80/TCP ClusterIP [ClusterIP, InternalLocal, non-routable] -> \(localOnly)",
            "192.0.2.10:30080/TCP NodePort [NodePort] -> \(all3)",
        ]
    ),
    TranslationCase(
        name: "both traffic policies Local with affinity",
        snapshot: ClusterSnapshot(
            services: [service(
                "web", type: "NodePort", clusterIP: "10.96.0.10", ports: [port(80, name: "http", nodePort: 30080)],
                etp: "Local", itp: "Local", affinity: "ClientIP", timeout: 30
            )],
            endpointSlices: [webSlice]
        ),
        expected: [
            "0.0.0.0:30080/TCP NodePort [NodePort, Local, sessionAffinity, non-routable] (affinity 30) -> \(localOnly)",
            "10.96.0.10:80/TCP ClusterIP [ClusterIP, InternalLocal, sessionAffinity, non-routable] (affinity 30) -> \(localOnly)",
            "192.0.2.10:30080/TCP NodePort [NodePort, Local, sessionAffinity] (affinity 30) -> \(localOnly)",
        ]
    ),
    // Rule 4: backends.
    TranslationCase(
        name: "named targetPorts resolved per slice across slices with different port sets",
        snapshot: ClusterSnapshot(
            services: [service("web", clusterIP: "10.96.0.10", ports: [
                port(80, name: "http", target: .string("web")), port(9100, name: "metrics", target: .string("metrics")),
            ])],
            endpointSlices: [
                slice("web-a", ports: [eport(8080), eport(9090, name: "metrics")], endpoints: [ep("10.244.1.10")]),
                slice("web-b", ports: [eport(8081)], endpoints: [ep("10.244.2.20")]),
                slice("web-c", ports: [eport(9091, name: "metrics")], endpoints: [ep("10.244.3.30")]),
            ]
        ),
        expected: [
            "\(clusterIP) -> 10.244.1.10:8080, 10.244.2.20:8081",
            "10.96.0.10:9100/TCP ClusterIP [ClusterIP, non-routable] -> 10.244.1.10:9090, 10.244.3.30:9091",
        ]
    ),
    TranslationCase(
        name: "deduplicated across slices, the better state wins whatever the slice order",
        snapshot: ClusterSnapshot(
            services: [service("web", clusterIP: "10.96.0.10")],
            endpointSlices: [
                slice("web-a", endpoints: [ep("10.244.1.10", ready: false, serving: true, terminating: true), ep("10.244.2.11")]),
                slice("web-b", endpoints: [ep("10.244.1.10", ready: true), ep("10.244.2.11", ready: false, serving: true, terminating: true), ep("10.244.2.11")]),
            ]
        ),
        expected: ["\(clusterIP) -> 10.244.1.10:8080, 10.244.2.11:8080"]
    ),
    TranslationCase(
        name: "endpoint conditions: ready true/absent active, not-ready serving terminating kept, rest dropped",
        snapshot: ClusterSnapshot(
            services: [service("web", clusterIP: "10.96.0.10")],
            endpointSlices: [slice("web-a", endpoints: [
                ep("10.0.0.1"),
                ep("10.0.0.2", ready: true),
                ep("10.0.0.3", ready: false, serving: true, terminating: true),
                ep("10.0.0.4", ready: false, serving: false, terminating: true),
                ep("10.0.0.5", ready: false, serving: true, terminating: false),
                ep("10.0.0.6", ready: false),
                ep("10.0.0.7", serving: false, terminating: true),
            ])]
        ),
        expected: ["\(clusterIP) -> 10.0.0.1:8080, 10.0.0.2:8080, 10.0.0.7:8080, 10.0.0.3:8080 (terminating)"]
    ),
    TranslationCase(
        name: "terminating-only backends are kept",
        snapshot: ClusterSnapshot(
            services: [service("web", clusterIP: "10.96.0.10")],
            endpointSlices: [slice("web-a", endpoints: [
                ep("10.0.0.9", ready: false, serving: true, terminating: true),
                ep("10.0.0.8", ready: false, serving: true, terminating: true),
            ])]
        ),
        expected: ["\(clusterIP) -> 10.0.0.8:8080 (terminating), 10.0.0.9:8080 (terminating)"]
    ),
    TranslationCase(
        name: "Endpoints source: addresses active, notReadyAddresses dropped, slices ignored",
        snapshot: ClusterSnapshot(
            services: [service("web", type: "NodePort", clusterIP: "10.96.0.10", ports: [port(80, name: "http", nodePort: 30080)], etp: "Local")],
            endpointSlices: [slice("web-x", endpoints: [ep("10.9.9.9")])],
            endpoints: [Endpoints(metadata: ObjectMeta(name: "web", namespace: "demo"), subsets: [
                EndpointSubset(
                    addresses: [EndpointAddress(ip: "10.244.2.11", nodeName: "node-b"), EndpointAddress(ip: "10.244.1.10", nodeName: "node-a")],
                    notReadyAddresses: [EndpointAddress(ip: "10.244.2.12", nodeName: "node-b")],
                    ports: [eport(8080)]
                ),
                EndpointSubset(addresses: [EndpointAddress(ip: "10.244.1.10", nodeName: "node-a"), EndpointAddress(ip: "fd00::7")], ports: [eport(8080)]),
            ])]
        ),
        options: TranslatorOptions(nodeName: "node-a", nodeAddresses: [IPAddress("192.0.2.10")!], endpointsSource: .endpoints),
        expected: [
            "0.0.0.0:30080/TCP NodePort [NodePort, Local, non-routable] -> 10.244.1.10:8080",
            "\(clusterIP) -> 10.244.1.10:8080, 10.244.2.11:8080",
            "192.0.2.10:30080/TCP NodePort [NodePort, Local] -> 10.244.1.10:8080",
        ]
    ),
    TranslationCase(
        name: "EndpointSlices source ignores Endpoints",
        snapshot: ClusterSnapshot(
            services: [service("web", clusterIP: "10.96.0.10")],
            endpoints: [Endpoints(metadata: ObjectMeta(name: "web", namespace: "demo"), subsets: [
                EndpointSubset(addresses: [EndpointAddress(ip: "10.244.1.10")], ports: [eport(8080)]),
            ])]
        ),
        expected: ["\(clusterIP) ->"]
    ),
    TranslationCase(
        name: "IPv6 slice ignored without warning",
        snapshot: ClusterSnapshot(
            services: [service("web", clusterIP: "10.96.0.10")],
            endpointSlices: [slice("web-v6", addressType: "IPv6", endpoints: [ep("fd00::10")]), webSlice]
        ),
        expected: ["\(clusterIP) -> \(all3)"]
    ),
    TranslationCase(
        name: "slices of other Services, other namespaces or without the label are not used",
        snapshot: ClusterSnapshot(
            services: [service("web", clusterIP: "10.96.0.10")],
            endpointSlices: [
                slice("web-other-ns", ns: "other", endpoints: [ep("10.1.0.1")]),
                slice("api-1", service: "api", endpoints: [ep("10.1.0.2")]),
                slice("web-nolabel", service: nil, endpoints: [ep("10.1.0.3")]),
            ]
        ),
        expected: ["\(clusterIP) ->"]
    ),
    // Rule 7 and protocols.
    TranslationCase(
        name: "headless, ExternalName and port-less Services produce nothing",
        snapshot: ClusterSnapshot(
            services: [
                service("headless", clusterIP: "None"),
                service("headless2", clusterIPs: ["None"]),
                service("ext", type: "ExternalName", externalName: "db.example.com"),
                service("portless", clusterIP: "10.96.0.12", ports: nil),
                service("emptyports", clusterIP: "10.96.0.13", ports: []),
            ],
            endpointSlices: [slice("headless-1", service: "headless", endpoints: [ep("10.1.0.1")])]
        ),
        expected: []
    ),
    TranslationCase(
        name: "TCP, UDP and SCTP are matched by protocol as well as name",
        snapshot: ClusterSnapshot(
            services: [
                service("dns", clusterIP: "10.96.0.10", ports: [port(53, name: "dns", proto: "UDP"), port(53, name: "dns-tcp", proto: "TCP")]),
                service("sig", clusterIP: "10.96.0.20", ports: [port(9999, proto: "SCTP")]),
                service("mismatch", clusterIP: "10.96.0.30", ports: [port(80, name: "http", proto: "UDP")]),
            ],
            endpointSlices: [
                slice("dns-1", service: "dns", ports: [eport(53, name: "dns", proto: "UDP"), eport(53, name: "dns-tcp")], endpoints: [ep("10.244.0.141")]),
                slice("sig-1", service: "sig", ports: [eport(9999, name: nil, proto: "SCTP"), eport(9998, name: nil)], endpoints: [ep("10.244.0.142")]),
                slice("mismatch-1", service: "mismatch", endpoints: [ep("10.244.0.143")]),
            ]
        ),
        expected: [
            "10.96.0.10:53/TCP ClusterIP [ClusterIP, non-routable] -> 10.244.0.141:53",
            "10.96.0.10:53/UDP ClusterIP [ClusterIP, non-routable] -> 10.244.0.141:53",
            "10.96.0.20:9999/SCTP ClusterIP [ClusterIP, non-routable] -> 10.244.0.142:9999",
            "10.96.0.30:80/UDP ClusterIP [ClusterIP, non-routable] ->",
        ]
    ),
    TranslationCase(
        name: "objects without a namespace are in the default namespace",
        snapshot: ClusterSnapshot(
            services: [service("web", ns: nil, clusterIP: "10.96.0.10")],
            endpointSlices: [slice("web-1", ns: nil, endpoints: [ep("10.244.1.10")])]
        ),
        expected: ["\(clusterIP) -> 10.244.1.10:8080"]
    ),
]

private let warningCases: [TranslationCase] = [
    TranslationCase(
        name: "malformed clusterIPs entry skipped, the other kept",
        snapshot: ClusterSnapshot(services: [service("web", clusterIPs: ["10.96.0.300", "10.96.0.10"])], endpointSlices: [webSlice]),
        expected: ["\(clusterIP) -> \(all3)"],
        warnings: ["Service demo/web spec.clusterIPs[0]"]
    ),
    TranslationCase(
        name: "malformed clusterIP: NodePort frontends still made",
        snapshot: ClusterSnapshot(services: [service("web", type: "NodePort", clusterIP: "ten", ports: [port(80, name: "http", nodePort: 30080)])]),
        expected: ["0.0.0.0:30080/TCP NodePort [NodePort, non-routable] ->", "192.0.2.10:30080/TCP NodePort [NodePort] ->"],
        warnings: ["Service demo/web spec.clusterIP"]
    ),
    TranslationCase(
        name: "ports out of range skipped, valid port kept",
        snapshot: ClusterSnapshot(services: [service("web", clusterIP: "10.96.0.10", ports: [
            port(0, name: "a"), port(70000, name: "b"), port(-1, name: "c"), port(80, name: "http"),
        ])]),
        expected: ["\(clusterIP) ->"],
        warnings: ["Service demo/web spec.ports[0].port", "Service demo/web spec.ports[1].port", "Service demo/web spec.ports[2].port"]
    ),
    TranslationCase(
        name: "nodePort out of range: no NodePort frontends, ClusterIP kept",
        snapshot: ClusterSnapshot(services: [service("web", type: "NodePort", clusterIP: "10.96.0.10", ports: [
            port(80, name: "http", nodePort: 70000), port(81, name: "b", nodePort: -5),
        ])]),
        expected: ["\(clusterIP) ->", "10.96.0.10:81/TCP ClusterIP [ClusterIP, non-routable] ->"],
        warnings: ["Service demo/web spec.ports[0].nodePort", "Service demo/web spec.ports[1].nodePort"]
    ),
    TranslationCase(
        name: "unknown or lower-case protocol skips the port",
        snapshot: ClusterSnapshot(services: [service("web", clusterIP: "10.96.0.10", ports: [
            port(80, name: "icmp", proto: "ICMP"), port(80, name: "lower", proto: "tcp"), port(80, name: "http"),
        ])]),
        expected: ["\(clusterIP) ->"],
        warnings: ["Service demo/web spec.ports[0].protocol", "Service demo/web spec.ports[1].protocol"]
    ),
    TranslationCase(
        name: "duplicate port name and protocol skips the second",
        snapshot: ClusterSnapshot(services: [service("web", clusterIP: "10.96.0.10", ports: [
            port(80, name: "http"), port(81, name: "http"), port(81, name: "http", proto: "UDP"),
        ])]),
        expected: ["\(clusterIP) ->", "10.96.0.10:81/UDP ClusterIP [ClusterIP, non-routable] ->"],
        warnings: ["Service demo/web spec.ports[1].name"]
    ),
    TranslationCase(
        name: "missing name and unknown type skip the Service, others still translate",
        snapshot: ClusterSnapshot(services: [
            service("", clusterIP: "10.96.0.99"), service("odd", type: "Weird", clusterIP: "10.96.0.98"), service("web", clusterIP: "10.96.0.10"),
        ]),
        expected: ["\(clusterIP) ->"],
        warnings: ["Service demo/ metadata.name", "Service demo/odd spec.type"]
    ),
    TranslationCase(
        name: "malformed externalIPs and ingress IPs skipped",
        snapshot: ClusterSnapshot(services: [service(
            "web", type: "LoadBalancer", clusterIP: "10.96.0.10", externalIPs: ["198.51.100.20", "bogus"],
            ingress: [LoadBalancerIngress(ip: "203.0.113.999"), LoadBalancerIngress(ip: "203.0.113.5")]
        )]),
        expected: [
            "\(clusterIP) ->", "198.51.100.20:80/TCP ExternalIPs [ExternalIPs] ->", "203.0.113.5:80/TCP LoadBalancer [LoadBalancer] ->",
        ],
        warnings: ["Service demo/web status.loadBalancer.ingress[0].ip", "Service demo/web spec.externalIPs[1]"]
    ),
    TranslationCase(
        name: "affinity timeout out of range falls back to 10800",
        snapshot: ClusterSnapshot(services: [
            service("a", clusterIP: "10.96.0.1", affinity: "ClientIP", timeout: -1),
            service("b", clusterIP: "10.96.0.2", affinity: "ClientIP", timeout: 0),
            service("c", clusterIP: "10.96.0.3", affinity: "ClientIP", timeout: 86401),
            service("d", clusterIP: "10.96.0.4", affinity: "ClientIP", timeout: 86400),
        ]),
        expected: [
            "10.96.0.1:80/TCP ClusterIP [ClusterIP, sessionAffinity, non-routable] (affinity 10800) ->",
            "10.96.0.2:80/TCP ClusterIP [ClusterIP, sessionAffinity, non-routable] (affinity 10800) ->",
            "10.96.0.3:80/TCP ClusterIP [ClusterIP, sessionAffinity, non-routable] (affinity 10800) ->",
            "10.96.0.4:80/TCP ClusterIP [ClusterIP, sessionAffinity, non-routable] (affinity 86400) ->",
        ],
        warnings: [
            "Service demo/a spec.sessionAffinityConfig.clientIP.timeoutSeconds",
            "Service demo/b spec.sessionAffinityConfig.clientIP.timeoutSeconds",
            "Service demo/c spec.sessionAffinityConfig.clientIP.timeoutSeconds",
        ]
    ),
    TranslationCase(
        name: "unknown affinity and traffic policies fall back to the defaults",
        snapshot: ClusterSnapshot(
            services: [service(
                "web", type: "NodePort", clusterIP: "10.96.0.10", ports: [port(80, name: "http", nodePort: 30080)],
                etp: "Sometimes", itp: "local", affinity: "Cookie"
            )],
            endpointSlices: [webSlice]
        ),
        expected: [
            "0.0.0.0:30080/TCP NodePort [NodePort, non-routable] -> \(all3)",
            "\(clusterIP) -> \(all3)",
            "192.0.2.10:30080/TCP NodePort [NodePort] -> \(all3)",
        ],
        warnings: ["Service demo/web spec.externalTrafficPolicy", "Service demo/web spec.internalTrafficPolicy", "Service demo/web spec.sessionAffinity"]
    ),
    TranslationCase(
        name: "FQDN and unknown address types skip the slice",
        snapshot: ClusterSnapshot(
            services: [service("web", clusterIP: "10.96.0.10")],
            endpointSlices: [
                slice("web-fqdn", addressType: "FQDN", endpoints: [ep("db.example.com")]),
                slice("web-v5", addressType: "IPv5", endpoints: [ep("10.1.1.1")]),
                slice("web-z", endpoints: [ep("10.244.1.10")]),
            ]
        ),
        expected: ["\(clusterIP) -> 10.244.1.10:8080"],
        warnings: ["EndpointSlice demo/web-fqdn addressType", "EndpointSlice demo/web-v5 addressType"]
    ),
    TranslationCase(
        name: "bad slice endpoints and ports skipped, the rest used",
        snapshot: ClusterSnapshot(
            services: [service("web", clusterIP: "10.96.0.10", ports: [port(80, name: "http"), port(81, name: "b"), port(82, name: "c")])],
            endpointSlices: [slice(
                "web-1",
                ports: [eport(8080), eport(70000, name: "b"), eport(8082, name: "c", proto: "HTTP"), eport(8083), eport(nil, name: "d")],
                endpoints: [
                    ep("10.244.1.300"), ep("fd00::1"), Endpoint(addresses: []), ep("10.244.1.10"),
                ]
            )]
        ),
        expected: [
            "\(clusterIP) -> 10.244.1.10:8080",
            "10.96.0.10:81/TCP ClusterIP [ClusterIP, non-routable] ->",
            "10.96.0.10:82/TCP ClusterIP [ClusterIP, non-routable] ->",
        ],
        warnings: [
            "EndpointSlice demo/web-1 ports[1].port", "EndpointSlice demo/web-1 ports[2].protocol", "EndpointSlice demo/web-1 ports[3].name",
            "EndpointSlice demo/web-1 endpoints[0].addresses[0]", "EndpointSlice demo/web-1 endpoints[1].addresses[0]",
            "EndpointSlice demo/web-1 endpoints[2].addresses",
        ]
    ),
    TranslationCase(
        name: "bad Endpoints addresses and ports skipped",
        snapshot: ClusterSnapshot(
            services: [service("web", clusterIP: "10.96.0.10")],
            endpoints: [Endpoints(metadata: ObjectMeta(name: "web", namespace: "demo"), subsets: [
                EndpointSubset(addresses: [EndpointAddress(ip: "10.244.1.10")], ports: [eport(0)]),
                EndpointSubset(addresses: [EndpointAddress(ip: "10.244.1.11"), EndpointAddress(ip: "nope")], ports: [eport(8080)]),
            ])]
        ),
        options: TranslatorOptions(nodeName: "node-a", endpointsSource: .endpoints),
        expected: ["\(clusterIP) -> 10.244.1.11:8080"],
        warnings: ["Endpoints demo/web subsets[0].ports[0].port", "Endpoints demo/web subsets[1].addresses[1].ip"]
    ),
    TranslationCase(
        name: "a frontend claimed twice: the first Service in name order keeps it",
        snapshot: ClusterSnapshot(services: [
            service("web", type: "NodePort", clusterIP: "10.96.0.10", ports: [port(80, name: "http", nodePort: 30080)], externalIPs: ["198.51.100.20"]),
            service("api", type: "NodePort", clusterIP: "10.96.0.11", ports: [port(80, name: "http", nodePort: 30080)], externalIPs: ["198.51.100.20"]),
        ]),
        options: TranslatorOptions(nodeName: "node-a"),
        expected: [
            "0.0.0.0:30080/TCP NodePort [NodePort, non-routable] ->",
            "\(clusterIP) ->",
            "10.96.0.11:80/TCP ClusterIP [ClusterIP, non-routable] ->",
            "198.51.100.20:80/TCP ExternalIPs [ExternalIPs] ->",
        ],
        warnings: ["Service demo/web spec.ports[0].nodePort", "Service demo/web spec.externalIPs[0]"]
    ),
]

@Suite struct TranslatorTests {
    @Test(arguments: ruleCases)
    func rule(_ c: TranslationCase) {
        let state = Translator.translate(c.snapshot, options: c.options)
        #expect(lines(state) == c.expected)
        #expect(warningLines(state) == c.warnings)
    }

    @Test(arguments: warningCases)
    func badInputWarns(_ c: TranslationCase) {
        let state = Translator.translate(c.snapshot, options: c.options)
        #expect(lines(state) == c.expected)
        #expect(warningLines(state) == c.warnings)
        #expect(state.warnings.allSatisfy { !$0.message.isEmpty })
    }

    @Test func entriesCarryServiceReferenceAndBackendDetails() throws {
        let svc = service("web", type: "NodePort", clusterIP: "10.96.0.10", ports: [port(53, name: "dns", proto: "UDP", nodePort: 30053)])
        let s = slice("web-1", ports: [eport(5353, name: "dns", proto: "UDP")], endpoints: [ep("10.244.1.10", node: "node-a")])
        let state = Translator.translate(ClusterSnapshot(services: [svc], endpointSlices: [s]), options: nodeA)
        #expect(state.entries.count == 3)
        for entry in state.entries {
            #expect(entry.service == ServiceReference(namespace: "demo", name: "web", port: 53, portName: "dns"))
            #expect(entry.l7ProxyPort == nil)
            #expect(!entry.flags.contains(.l7LoadBalancer))
            #expect(entry.frontend.scope == .external)
            #expect(entry.backends == [Backend(address: IPAddress("10.244.1.10")!, port: 5353, proto: .udp, state: .active, nodeName: "node-a")])
        }
        let types = state.entries.map(\.type)
        #expect(types == [.nodePort, .clusterIP, .nodePort])
    }

    @Test func backendProtocolsMatchFrontends() {
        let state = Translator.translate(ruleCases.first { $0.name.hasPrefix("TCP, UDP") }!.snapshot, options: nodeA)
        #expect(!state.entries.isEmpty)
        for entry in state.entries {
            #expect(entry.backends.allSatisfy { $0.proto == entry.frontend.proto })
        }
    }

    @Test(arguments: ruleCases + warningCases)
    func inputOrderDoesNotMatter(_ c: TranslationCase) {
        var reversed = c.snapshot
        reversed.services.reverse()
        reversed.endpointSlices.reverse()
        reversed.endpoints.reverse()
        #expect(Translator.translate(reversed, options: c.options) == Translator.translate(c.snapshot, options: c.options))
    }

    /// Many Services, each with its own slices: the per-Service index must hand every Service
    /// exactly its own backends.
    @Test func manyServicesEachGetTheirOwnBackends() {
        var snapshot = ClusterSnapshot()
        let count = 3000
        for i in 0..<count {
            let name = "svc-\(i)"
            let ip = "10.\(96 + i / 65536).\(i / 256 % 256).\(i % 256)"
            snapshot.services.append(service(name, ns: "ns-\(i % 7)", clusterIP: ip))
            let backend = "10.244.\(i / 256 % 256).\(i % 256)"
            snapshot.endpointSlices.append(slice("\(name)-a", service: name, ns: "ns-\(i % 7)", endpoints: [ep(backend)]))
            snapshot.endpointSlices.append(slice("\(name)-b", service: name, ns: "ns-\(i % 7)", ports: [eport(8081)], endpoints: [ep(backend)]))
        }
        let state = Translator.translate(snapshot, options: nodeA)
        #expect(state.entries.count == count)
        #expect(state.warnings.isEmpty)
        for entry in state.entries {
            let i = Int(entry.service.name.dropFirst(4))!
            #expect(entry.service.namespace == "ns-\(i % 7)")
            #expect(entry.backends.map { "\($0.address):\($0.port)" } == ["10.244.\(i / 256 % 256).\(i % 256):8080", "10.244.\(i / 256 % 256).\(i % 256):8081"])
        }
        #expect(state.entries.map(\.frontend) == state.entries.map(\.frontend).sorted())
    }
}
