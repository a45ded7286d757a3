import Yams

/// Decodes a `Decodable` straight from a composed YAML node (Yams 5 decodes only from text, which
/// meant re-emitting and re-parsing every object). Scalars follow the YAML 1.2 core schema for
/// what the models need: plain `123`, `0x1F`, `0o17` are numbers, plain `true`/`false` booleans,
/// plain `~`/`null`/empty null; a quoted scalar is always a string. Mapping keys are compared as
/// text, without Yams' regular-expression tag resolution. Errors are the standard `DecodingError`s,
/// with the structural mismatches reported as Yams does (`Node.Mapping`/`Sequence`/`Scalar` types).
struct NodeDecoder: Decoder {
    let node: Yams.Node
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(node: Yams.Node, codingPath: [any CodingKey] = []) {
        self.node = node
        self.codingPath = codingPath
    }

    static func decode<T: Decodable>(_ type: T.Type, from node: Yams.Node) throws -> T {
        try NodeDecoder(node: node).decodeValue(type)
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .mapping(let mapping) = node else { throw mismatch(Yams.Node.Mapping.self) }
        return KeyedDecodingContainer(KeyedNodeContainer<Key>(mapping: mapping, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .sequence(let sequence) = node else { throw mismatch(Yams.Node.Sequence.self) }
        return UnkeyedNodeContainer(elements: Array(sequence), codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    func mismatch(_ expected: Any.Type) -> DecodingError {
        .typeMismatch(expected, .init(codingPath: codingPath, debugDescription: "Expected \(expected), found \(node)"))
    }

    /// The scalar, or a mismatch naming what was expected.
    func scalar(_ expected: Any.Type) throws -> Yams.Node.Scalar {
        guard case .scalar(let scalar) = node else { throw mismatch(Yams.Node.Scalar.self) }
        return scalar
    }

    func decodeValue<T: Decodable>(_ type: T.Type) throws -> T {
        switch type {
        case is String.Type: return try decode(String.self) as! T
        case is Int.Type: return try decode(Int.self) as! T
        case is Bool.Type: return try decode(Bool.self) as! T
        default: return try T(from: self)
        }
    }

    static func isNull(_ node: Yams.Node) -> Bool {
        guard case .scalar(let s) = node, s.style == .plain || s.style == .any else { return false }
        return s.string.isEmpty || s.string == "~" || s.string == "null" || s.string == "Null" || s.string == "NULL"
    }

    /// A core-schema integer: optional sign and decimal digits, or 0x / 0o prefixed.
    static func integer(_ text: String) -> Int? {
        if text.hasPrefix("0x") { return Int(text.dropFirst(2), radix: 16) }
        if text.hasPrefix("0o") { return Int(text.dropFirst(2), radix: 8) }
        let digits = text.hasPrefix("-") || text.hasPrefix("+") ? text.dropFirst() : Substring(text)
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        return Int(text.hasPrefix("+") ? String(digits) : text)
    }
}

extension NodeDecoder: SingleValueDecodingContainer {
    func decodeNil() -> Bool { Self.isNull(node) }

    func decode(_ type: Bool.Type) throws -> Bool {
        let s = try scalar(type)
        guard s.style == .plain || s.style == .any else { throw mismatch(type) }
        switch s.string {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default: throw mismatch(type)
        }
    }

    func decode(_ type: String.Type) throws -> String { try scalar(type).string }

    func decode(_ type: Double.Type) throws -> Double {
        let s = try scalar(type)
        guard s.style == .plain || s.style == .any, let value = Double(s.string) else { throw mismatch(type) }
        return value
    }

    func decode(_ type: Float.Type) throws -> Float { Float(try decode(Double.self)) }

    func decode<T: BinaryInteger & FixedWidthInteger>(integer type: T.Type) throws -> T {
        let s = try scalar(type)
        guard s.style == .plain || s.style == .any, let value = Self.integer(s.string), let exact = T(exactly: value) else {
            throw mismatch(type)
        }
        return exact
    }

    func decode(_ type: Int.Type) throws -> Int { try decode(integer: type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try decode(integer: type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try decode(integer: type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try decode(integer: type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try decode(integer: type) }
    func decode(_ type: UInt.Type) throws -> UInt { try decode(integer: type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try decode(integer: type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try decode(integer: type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try decode(integer: type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try decode(integer: type) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decodeValue(type) }
}

/// An integer coding key for sequence positions (rendered `[n]` in field paths).
struct IndexKey: CodingKey {
    let intValue: Int?
    var stringValue: String { "Index \(intValue ?? 0)" }
    init(_ index: Int) { intValue = index }
    init?(stringValue: String) { return nil }
    init?(intValue: Int) { self.intValue = intValue }
}

struct KeyedNodeContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let mapping: Yams.Node.Mapping
    let codingPath: [any CodingKey]

    /// The value of `key`, comparing keys as text; the last one wins, as in Yams.
    func value(_ key: Key) -> Yams.Node? {
        var found: Yams.Node?
        for (k, v) in mapping where k.scalar?.string == key.stringValue { found = v }
        return found
    }

    var allKeys: [Key] { mapping.compactMap { $0.key.scalar.flatMap { Key(stringValue: $0.string) } } }

    func contains(_ key: Key) -> Bool { value(key) != nil }

    func child(_ key: Key) throws -> NodeDecoder {
        guard let node = value(key) else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "No value for \(key.stringValue)"))
        }
        return NodeDecoder(node: node, codingPath: codingPath + [key])
    }

    func decodeNil(forKey key: Key) throws -> Bool { NodeDecoder.isNull(try child(key).node) }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try child(key).decodeValue(type) }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try child(key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try child(key).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder { NodeDecoder(node: .mapping(mapping), codingPath: codingPath) }
    func superDecoder(forKey key: Key) throws -> any Decoder { try child(key) }
}

struct UnkeyedNodeContainer: UnkeyedDecodingContainer {
    let elements: [Yams.Node]
    let codingPath: [any CodingKey]
    private(set) var currentIndex = 0

    init(elements: [Yams.Node], codingPath: [any CodingKey]) {
        self.elements = elements
        self.codingPath = codingPath
    }

    var count: Int? { elements.count }
    var isAtEnd: Bool { currentIndex >= elements.count }

    mutating func next() throws -> NodeDecoder {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(Any.self, .init(codingPath: codingPath + [IndexKey(currentIndex)], debugDescription: "Unkeyed container is at end"))
        }
        defer { currentIndex += 1 }
        return NodeDecoder(node: elements[currentIndex], codingPath: codingPath + [IndexKey(currentIndex)])
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, NodeDecoder.isNull(elements[currentIndex]) else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try next().decodeValue(type) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try next().container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer { try next().unkeyedContainer() }

    mutating func superDecoder() throws -> any Decoder { try next() }
}
