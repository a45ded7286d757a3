import Datapath
import Testing

/// The attach plan is pure: what is attached where, and in which order.
struct AttachPlanTests {
    @Test("sk_lookup, devices, pod devices and cgroup hooks, reverse translations first")
    func fullPlan() {
        let plan = AttachPlan.make(DatapathOptions(
            devices: ["eth0"], podDevices: ["lxc1", "eth0"], socketLBCgroup: "/sys/fs/cgroup"))
        let rows = plan.entries.map { "\($0.program) \($0.target)" }
        #expect(rows == [
            // First: the tc programs are loaded knowing it is attached.
            "pw_sk_lookup netns sk_lookup",
            "pw_egress eth0 egress", "pw_ingress eth0 ingress",
            // eth0 is external: it keeps the external programs, it is not also a pod device.
            "pw_to_pod lxc1 egress", "pw_from_pod lxc1 ingress",
            "pw_sock_recvmsg4 cgroup /sys/fs/cgroup recvmsg4", "pw_sock_getpeername4 cgroup /sys/fs/cgroup getpeername4",
            "pw_sock_connect4 cgroup /sys/fs/cgroup connect4", "pw_sock_sendmsg4 cgroup /sys/fs/cgroup sendmsg4",
        ])
        #expect(plan.programs == [
            "pw_sk_lookup", "pw_egress", "pw_ingress", "pw_to_pod", "pw_from_pod", "pw_sock_recvmsg4", "pw_sock_getpeername4",
            "pw_sock_connect4", "pw_sock_sendmsg4",
        ])
    }

    @Test("without pod devices and socket-LB only sk_lookup and the external devices' programs are planned")
    func minimalPlan() {
        let plan = AttachPlan.make(DatapathOptions(devices: ["eth0", "eth1"]))
        #expect(plan.programs == ["pw_sk_lookup", "pw_egress", "pw_ingress"])
        #expect(plan.entries.count == 5)
        #expect(AttachPlan.make(DatapathOptions(devices: [])).entries.isEmpty)
        var withoutSkLookup = DatapathOptions(devices: ["eth0"])
        withoutSkLookup.skLookup = false
        #expect(AttachPlan.make(withoutSkLookup).programs == ["pw_egress", "pw_ingress"])
    }

    @Test("the cgroup v2 root is read from /proc/mounts (unified and hybrid layouts)")
    func cgroupRoot() {
        #expect(CgroupV2.defaultRoot(mounts: "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n") == "/sys/fs/cgroup")
        let hybrid = """
            tmpfs /sys/fs/cgroup tmpfs rw 0 0
            cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0
            cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0
            """
        #expect(CgroupV2.defaultRoot(mounts: hybrid) == "/sys/fs/cgroup/unified")
        #expect(CgroupV2.defaultRoot(mounts: "cgroup /sys/fs/cgroup/cpu cgroup rw 0 0") == nil)
        #expect(CgroupV2.defaultRoot(mounts: nil) == nil)
    }
}
