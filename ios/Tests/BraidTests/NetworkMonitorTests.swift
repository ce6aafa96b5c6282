// The NWPathMonitor-based monitor: Apple platforms only (Network does not exist elsewhere).

#if canImport(Network)
@testable import Braid
import Network
import XCTest

// @unchecked Sendable: Linux XCTest's generated entry points capture the test case in
// @Sendable closures for async tests (an error in Swift 6 mode); XCTest runs one test
// method at a time on an instance, and the tests keep no mutable state in it.
final class NetworkMonitorTests: XCTestCase, @unchecked Sendable {
    func testInterfaceKinds() {
        XCTAssertEqual(BraidNetworkMonitor.kind(of: .wifi), .wifi)
        XCTAssertEqual(BraidNetworkMonitor.kind(of: .cellular), .cellular)
        XCTAssertEqual(BraidNetworkMonitor.kind(of: .wiredEthernet), .wired)
        XCTAssertEqual(BraidNetworkMonitor.kind(of: .loopback), .other)
    }

    func testMonitorReportsCurrentInterfaces() async {
        let monitor = BraidNetworkMonitor()
        let interfaces = await monitor.start()
        // Whatever the machine has: every interface carries its index (the path id).
        XCTAssertTrue(interfaces.allSatisfy { $0.index != nil && $0.name != nil })
        monitor.stop()
    }
}
#endif
