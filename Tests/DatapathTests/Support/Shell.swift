import CPortwayBPF
import Foundation

// run, Child, onDedicatedThread and CommandError are PortwayTestSupport's (Processes.swift).

/// Runs `body` on a fresh thread that has entered the named network namespace (setns only
/// affects the calling thread), and waits for it. Call from a dedicated thread.
func inNetns<T>(_ name: String, _ body: @escaping () throws -> T) throws -> T {
    nonisolated(unsafe) var result: Result<T, any Error>?
    nonisolated(unsafe) let work = body
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        defer { done.signal() }
        let rc = portway_dp_enter_netns("/var/run/netns/\(name)")
        guard rc == 0 else {
            result = .failure(CommandError(command: ["setns", name], status: -rc, output: ""))
            return
        }
        result = Result { try work() }
    }
    thread.start()
    done.wait()
    return try result!.get()
}
