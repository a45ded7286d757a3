import Foundation

// withTemporaryDirectory, write(_:to:in:) and tracesDirectory are PortwayTestSupport's.

/// Whether the recorded objects are there; prints once why the tests needing them are skipped.
let recordedObjectsPresent: Bool = {
    let ok = FileManager.default.fileExists(atPath: tracesDirectory + "/objs.yaml")
    if !ok { print("skipped: tests needing \(tracesDirectory)/objs.yaml (../shared beside the package, or $PORTWAY_SHARED_DIR): it is absent") }
    return ok
}()
