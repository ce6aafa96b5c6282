// Run on a Mac after `cargo xtask apple`: `cd ios && swift test`.

@testable import Braid
import Network
import XCTest

final class BraidTests: XCTestCase {
    func testDefaultsAreRustsDefaults() {
        // The generated record defaults and the library's own must not drift apart.
        XCTAssertEqual(BraidConfig.defaults(.handover), BraidConfig(serviceType: .handover))
        XCTAssertEqual(BraidConfig.defaults(.aggregate).serviceType, .aggregate)
    }

    func testBadConfigThrowsInvalidArgumentWithMessage() {
        var config = BraidConfig.defaults()
        config.interfaces = [BraidInterface(kind: .wifi, localAddr: "not an ip")]
        XCTAssertThrowsError(try BraidClient(config: config)) { error in
            guard case BraidError.InvalidArgument = error else {
                return XCTFail("expected InvalidArgument, got \(error)")
            }
            XCTAssertTrue((error as? BraidError)?.message.contains("not an ip") ?? false)
        }
    }

    func testConnectToNothingFailsWithinTheTimeout() async throws {
        var config = BraidConfig.defaults()
        config.connectTimeoutMs = 500
        let client = try BraidClient(config: config)
        let start = Date()
        do {
            _ = try await client.connect(to: "127.0.0.1:9")
            XCTFail("connected to a closed port")
        } catch let error as BraidError {
            XCTAssertFalse(error.message.isEmpty)
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
    }

    func testUnknownGatewayAddressIsInvalidArgument() async throws {
        let client = try BraidClient()
        do {
            _ = try await client.connect(via: "no port here", target: "example.com:443")
            XCTFail("accepted a gateway without a port")
        } catch BraidError.InvalidArgument {
        }
    }

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

    func testLogHandlerReceivesLines() throws {
        let got = expectation(description: "a log line")
        got.assertForOverFulfill = false
        try BraidLog.start(level: .debug) { _, _, _ in got.fulfill() }
        defer { try? BraidLog.start(level: .off) }
        var config = BraidConfig.defaults()
        config.interfaces = [BraidInterface(kind: .wifi, localAddr: "127.0.0.1")]
        let client = try BraidClient(config: config)
        Task { _ = try? await client.connect(to: "127.0.0.1:9") }
        wait(for: [got], timeout: 5)
    }
}
