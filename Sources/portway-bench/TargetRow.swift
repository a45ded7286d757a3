// Issue 20's targets: each benchmark that measures one prints a `target |` row; scripts/bench.sh
// gathers them from every part of `make bench` into one table at the end.

/// Prints one row of the targets table: the figure, what Portway measured, its reference measured
/// in the same run, the target, and whether this run met it.
func targetRow(_ figure: String, measured: String, reference: String, target: String, met: Bool) {
    print("target | \(figure) | \(measured) | \(reference) | \(target) | \(met ? "yes" : "no") |")
}

/// A ratio with two decimals and a `×`.
func ratioText(_ value: Double) -> String { String(format: "%.2f×", value) }
