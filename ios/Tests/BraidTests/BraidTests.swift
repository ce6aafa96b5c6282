// Tests of the Swift layer that need no network: every platform (`swift test`; on Linux
// `cargo xtask test-swift`, which also runs BraidIntegrationTests).

@testable import Braid
import Foundation
import XCTest

// @unchecked Sendable: Linux XCTest's generated entry points capture the test case in
// @Sendable closures for async tests (an error in Swift 6 mode); XCTest runs one test
// method at a time on an instance, and the tests keep no mutable state in it.
final class BraidTests: XCTestCase, @unchecked Sendable {
    func testDefaultsAreRustsDefaults() {
        // The generated record defaults and the library's own must not drift apart.
        XCTAssertEqual(BraidConfig.defaults(.handover), BraidConfig(serviceType: .handover))
        XCTAssertEqual(BraidConfig.defaults(.aggregate).serviceType, .aggregate)
    }

    func testBadInterfaceAddressThrowsInvalidArgumentWithMessage() {
        var config = BraidConfig.defaults()
        config.interfaces = [BraidInterface(kind: .wifi, localAddr: "not an ip")]
        XCTAssertThrowsError(try BraidClient(config: config)) { error in
            guard case BraidError.InvalidArgument = error else {
                return XCTFail("expected InvalidArgument, got \(error)")
            }
            XCTAssertTrue((error as? BraidError)?.message.contains("not an ip") ?? false, "\(error)")
        }
    }

    func testConfigValidation() {
        var zeroTimeout = BraidConfig.defaults()
        zeroTimeout.connectTimeoutMs = 0
        var badVia = BraidConfig.defaults()
        badVia.interfaces = [BraidInterface(kind: .cellular, localAddr: "127.0.0.1", via: "nowhere")]
        for (config, words) in [(zeroTimeout, "connect_timeout_ms"), (badVia, "nowhere")] {
            XCTAssertThrowsError(try BraidClient(config: config)) { error in
                guard case BraidError.InvalidArgument(let m) = error else {
                    return XCTFail("expected InvalidArgument, got \(error)")
                }
                XCTAssertTrue(m.contains(words), "message: \(m)")
            }
        }
        // A sane config with explicit interfaces is accepted.
        var ok = BraidConfig.defaults(.aggregate)
        ok.interfaces = [BraidInterface(kind: .wifi, localAddr: "127.0.0.1")]
        XCTAssertNoThrow(try BraidClient(config: ok))
    }

    func testErrorsDescribeThemselvesInWords() {
        let e: Error = BraidError.Refused(message: "example.com:443 refused the connection")
        XCTAssertEqual(e.localizedDescription, "example.com:443 refused the connection")
        XCTAssertEqual((e as? LocalizedError)?.errorDescription, "example.com:443 refused the connection")
        XCTAssertFalse(e.localizedDescription.contains("BraidFFI"))
    }

    func testUnknownGatewayAddressIsInvalidArgument() async throws {
        let client = try BraidClient()
        do {
            _ = try await client.connect(via: "no port here", target: "example.com:443")
            XCTFail("accepted a gateway without a port")
        } catch BraidError.InvalidArgument(let m) {
            XCTAssertTrue(m.contains("no port here"), m)
        }
    }

    func testConnectToNothingFailsWithinTheTimeout() async throws {
        var config = BraidConfig.defaults()
        config.connectTimeoutMs = 500
        config.interfaces = [BraidInterface(kind: .wifi, localAddr: "127.0.0.1")]
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

    func testAlreadyCancelledTaskDoesNotConnect() async throws {
        var config = BraidConfig.defaults()
        config.connectTimeoutMs = 10_000
        config.interfaces = [BraidInterface(kind: .wifi, localAddr: "127.0.0.1")]
        let client = try BraidClient(config: config)
        let task = Task {
            // Cancelled before the call: it must not wait out the 10 s handshake timeout.
            withUnsafeCurrentTask { $0?.cancel() }
            return try await client.connect(to: "127.0.0.1:9")
        }
        let start = Date()
        do {
            _ = try await task.value
            XCTFail("connected")
        } catch is CancellationError {
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 1)
    }

    func testVersion() {
        XCTAssertFalse(BraidLog.version.isEmpty)
    }
}
