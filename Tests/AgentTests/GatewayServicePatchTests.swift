import Foundation
import GatewayCore
import KubeModels
import Testing

@testable import Agent

/// The leader's merge patch of a Gateway's Service (`GatewayWriters.servicePatch`) for the Gateway's
/// infrastructure labels and annotations (GatewayInfrastructurePropagation).
@Suite struct GatewayServicePatchTests {
    private func gateway(labels: [String: String]?, annotations: [String: String]?) -> Gateway {
        Gateway(
            metadata: ObjectMeta(name: "web", namespace: "shop", uid: "uid-1"),
            spec: GatewaySpec(
                gatewayClassName: "portway", listeners: [Listener(name: "http", port: 80, protocol: "HTTP")],
                infrastructure: GatewayInfrastructure(labels: labels, annotations: annotations)))
    }

    /// The patch as JSON metadata: `labels` and `annotations` (NSNull for a removal).
    private func metadata(_ patch: Data?) throws -> (labels: [String: Any], annotations: [String: Any]?) {
        let data = try #require(patch)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let metadata = try #require(object["metadata"] as? [String: Any])
        return (metadata["labels"] as? [String: Any] ?? [:], metadata["annotations"] as? [String: Any])
    }

    @Test func aServiceAsDesiredNeedsNoPatch() {
        let desired = GatewayServices.desiredService(for: gateway(labels: ["key2": "value2"], annotations: ["key1": "value1"]))
        #expect(GatewayWriters.servicePatch(current: desired, desired: desired, owners: desired.metadata.ownerReferences ?? []) == nil)
    }

    @Test func newKeysAreSetAndRemovedOnesNulledButOthersKeysStay() throws {
        var current = GatewayServices.desiredService(for: gateway(labels: ["key2": "value2", "gone": "x"], annotations: ["key1": "value1"]))
        current.metadata.labels?["team"] = "edge"
        current.metadata.annotations?["note"] = "kept"
        let desired = GatewayServices.desiredService(for: gateway(labels: ["key2": "other"], annotations: nil))
        let patch = try metadata(GatewayWriters.servicePatch(current: current, desired: desired, owners: current.metadata.ownerReferences ?? []))
        #expect(patch.labels["key2"] as? String == "other")
        #expect(patch.labels["gone"] is NSNull)
        #expect(patch.labels["team"] == nil)
        let annotations = try #require(patch.annotations)
        #expect(annotations["key1"] is NSNull)
        #expect(annotations[GatewayServices.propagatedAnnotationsAnnotation] is NSNull)
        #expect(annotations[GatewayServices.propagatedLabelsAnnotation] as? String == "key2")
        #expect(annotations["note"] == nil)
    }

    @Test func aServiceWithoutRecordsLosesNothing() throws {
        // Labels put on by someone else before Portway recorded anything are not Portway's to remove.
        var current = GatewayServices.desiredService(for: gateway(labels: nil, annotations: nil))
        current.metadata.labels?["key2"] = "value2"
        let desired = GatewayServices.desiredService(for: gateway(labels: ["key3": "value3"], annotations: nil))
        let patch = try metadata(GatewayWriters.servicePatch(current: current, desired: desired, owners: current.metadata.ownerReferences ?? []))
        #expect(patch.labels.keys.sorted() == ["key3"])
    }
}
