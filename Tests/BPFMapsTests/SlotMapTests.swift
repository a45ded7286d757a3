import BPFMaps
import PortwayTestSupport
import Testing

/// `SlotMap` (a frontend's slots: a dense run 1...n plus a dictionary past a gap) against a plain
/// `[UInt16: UInt32]`: same contents after any sequence of sets and clears, and equal maps compare
/// (and hash) equal however they were built.
@Suite("SlotMap against a dictionary (model check)")
struct SlotMapTests {
    @Test("random sets and clears: contents, count and equality match a dictionary", arguments: [UInt64(1), 2, 3, 4])
    func matchesDictionary(seed: UInt64) {
        print("SlotMapTests seed \(seed)")
        var rng = SeededRandom(seed: seed)
        var map = SlotMap(), model: [UInt16: UInt32] = [:]
        for step in 0..<4000 {
            // Mostly near the run's end (the writer's pattern), sometimes anywhere.
            let slot: UInt16 = Int.random(in: 0..<10, using: &rng) < 8
                ? UInt16.random(in: 0...UInt16(min(model.count + 3, 40)), using: &rng)
                : UInt16.random(in: 0...UInt16.max, using: &rng)
            if Bool.random(using: &rng) {
                let id = UInt32.random(in: 1...50, using: &rng)
                #expect(map.updateValue(id, forKey: slot) == model.updateValue(id, forKey: slot), "step \(step), seed \(seed)")
            } else {
                #expect(map.removeValue(forKey: slot) == model.removeValue(forKey: slot), "step \(step), seed \(seed)")
            }
            #expect(map.count == model.count)
            #expect(map[slot] == model[slot])
            if step % 50 == 0 {
                #expect(Dictionary(uniqueKeysWithValues: map.map { ($0.key, $0.value) }) == model, "step \(step), seed \(seed)")
                #expect(Set(map.keys) == Set(model.keys) && map.keys.count == model.count)
                #expect(map.values.sorted() == model.values.sorted())
                // Built afresh in another order, it is the same value.
                var rebuilt = SlotMap()
                for (s, id) in model.sorted(by: { $0.key > $1.key }) { rebuilt[s] = id }
                #expect(rebuilt == map && rebuilt.hashValue == map.hashValue, "step \(step), seed \(seed)")
            }
        }
    }

    @Test("a slot cleared inside the run moves the rest past the gap; filling the gap joins them again")
    func gapAndRejoin() {
        var map = SlotMap(dense: [11, 12, 13, 14])
        #expect(map.removeValue(forKey: 2) == 12)
        #expect(Set(map.keys) == [1, 3, 4])
        #expect(map == [1: 11, 3: 13, 4: 14])
        map[2] = 22
        #expect(map == SlotMap(dense: [11, 22, 13, 14]))
        #expect(map.keys == [1, 2, 3, 4], "the run is whole again: keys in order")
        #expect(Array(map.map(\.value)) == [11, 22, 13, 14])
    }
}
