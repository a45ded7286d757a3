import Foundation
import PortwayFuzzEntries

// The libFuzzer driver for every target of `FuzzEntries.targets` (see fuzz/README.md):
//
//     portway-fuzz TARGET [libFuzzer flags and corpus directories]
//     PORTWAY_FUZZ_TARGET=TARGET portway-fuzz [libFuzzer flags and corpus directories]
//
// The target is taken out of argv before libFuzzer parses it, and put into PORTWAY_FUZZ_TARGET so
// the processes libFuzzer starts itself (-fork, -jobs, -minimize_crash) run the same target.

let targetVariable = "PORTWAY_FUZZ_TARGET"

/// The entry point chosen in `main`, before libFuzzer calls `testOneInput`.
let entry: @Sendable (Data) -> Void = {
    guard let name = getenv(targetVariable).map({ String(cString: $0) }), let entry = FuzzEntries.targets[name] else {
        fatalError("\(targetVariable) names no fuzz target")
    }
    return entry
}()

@_cdecl("LLVMFuzzerTestOneInput")
func testOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    entry(start.map { Data(bytes: $0, count: count) } ?? Data())
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func runLibFuzzer(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// SwiftPM links executables with its own entry point, so libFuzzer is started from it.
@main
enum Fuzz {
    static func main() {
        var arguments = CommandLine.arguments
        if arguments.count > 1, FuzzEntries.targets[arguments[1]] != nil {
            setenv(targetVariable, arguments.remove(at: 1), 1)
        }
        guard let name = getenv(targetVariable).map({ String(cString: $0) }), FuzzEntries.targets[name] != nil else {
            let known = FuzzEntries.targets.keys.sorted().joined(separator: ", ")
            FileHandle.standardError.write(Data("usage: portway-fuzz TARGET [libFuzzer flags] [corpus...], or \(targetVariable)=TARGET; targets: \(known)\n".utf8))
            exit(2)
        }
        // argv for libFuzzer without the target: C strings that live until the process exits.
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        var argc = CInt(arguments.count)
        argv.withUnsafeMutableBufferPointer { buffer in
            var base = buffer.baseAddress!
            exit(runLibFuzzer(&argc, &base, testOneInput))
        }
    }
}
