/// The fields of one object, on the heap once however many copies of the object exist
/// (copy-on-write). The kinds a cluster has one or more of per Service (Service, EndpointSlice,
/// Endpoints) are held by the informer's store, the pipeline's index, the Gateway leader's index
/// and every snapshot at the same time; with their fields inline (~170–330 bytes per object) each
/// holder had a copy of its own. A model holding its fields here is one pointer wide.
///
/// `@unchecked Sendable`: `value` is only written through a model that holds the only reference
/// (`unique`), so no other thread can be reading it then.
final class SharedFields<Value: Sendable>: @unchecked Sendable {
    var value: Value

    init(_ value: Value) { self.value = value }

    /// Makes `fields` the only reference to its value (copying it when shared), before a write.
    static func unique(_ fields: inout SharedFields<Value>) {
        if !isKnownUniquelyReferenced(&fields) { fields = SharedFields(fields.value) }
    }
}
