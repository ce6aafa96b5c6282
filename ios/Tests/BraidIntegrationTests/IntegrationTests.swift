// The Swift API against the real library and a whole network on loopback: a Braid gateway,
// a TCP echo server behind it and two emulated paths ("wifi" 40 Mbit/s 10 ms, "cellular"
// 20 Mbit/s 30 ms), from the library's `testing` feature (module BraidTesting). Linux only:
// `cargo xtask test-swift` builds the library with that feature (the XCFramework has not).

import Braid
import BraidTesting
import Foundation
import XCTest

/// Interfaces that reach the gateway through the emulated paths.
func makeClient(_ net: BraidTestNetwork, _ service: ServiceType, timeoutMs: UInt64 = 5000) throws -> BraidClient {
    var config = BraidConfig.defaults(service)
    config.interfaces = [
        BraidInterface(kind: .wifi, localAddr: "127.0.0.1", via: try net.pathVia(name: "wifi")),
        BraidInterface(kind: .cellular, localAddr: "127.0.0.1", via: try net.pathVia(name: "cellular")),
    ]
    config.connectTimeoutMs = timeoutMs
    return try BraidClient(config: config)
}

func pattern(_ count: Int, seed: Int = 0) -> Data {
    Data((0..<count).map { UInt8(truncatingIfNeeded: ($0 &+ seed) &* 7 &+ $0 / 251) })
}

func writeAll(_ conn: BraidConnection, _ data: Data) async throws {
    var off = 0
    while off < data.count {
        let n = min(256 * 1024, data.count - off)
        try await conn.write(data.subdata(in: off..<off + n))
        off += n
    }
    try conn.finish()
}

/// Sends `data` while reading the echo; returns what came back.
func echo(_ conn: BraidConnection, _ data: Data) async throws -> Data {
    async let sent: Void = writeAll(conn, data)
    let got = try await conn.readToEnd()
    try await sent
    return got
}

/// One write of `count` bytes and its echo; returns how many bytes came back.
func echoRound(_ conn: BraidConnection, _ count: Int) async throws -> Int {
    async let sent: Void = conn.write(pattern(count))
    var got = 0
    while got < count {
        guard let d = try await conn.read() else { break }
        got += d.count
    }
    try await sent
    return got
}

struct TimedOut: Error, CustomStringConvertible {
    let description: String
}

/// Runs `body`, failing if it takes longer than `seconds`.
func within<T: Sendable>(_ seconds: Double, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw TimedOut(description: "\(what): nothing within \(seconds) s")
        }
        return value
    }
}

/// The first event `matching`, and every event seen up to it.
func firstEvent(
    _ conn: BraidConnection, within seconds: Double, matching: @escaping @Sendable (BraidEvent) -> Bool
) async throws -> (BraidEvent, [BraidEvent]) {
    try await within(seconds, "event") {
        var seen: [BraidEvent] = []
        for await e in conn.events {
            seen.append(e)
            if matching(e) { return (e, seen) }
        }
        throw TimedOut(description: "event stream ended; saw \(seen)")
    }
}

@Sendable func isPathSwitch(_ e: BraidEvent) -> Bool {
    if case .pathSwitched = e { return true }
    return false
}

func seconds(since start: DispatchTime) -> Double {
    Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
}

/// Log lines from any thread (the log sink runs on a Braid thread).
final class Lines: @unchecked Sendable {
    // @unchecked: `lines` is only touched with `lock` held.
    private let lock = NSLock()
    private var lines: [String] = []

    func add(_ line: String) {
        lock.lock()
        lines.append(line)
        lock.unlock()
    }

    var count: Int {
        lock.lock()
        defer { lock.unlock() }
        return lines.count
    }
}

// @unchecked Sendable: Linux XCTest's generated entry points capture the test case in
// @Sendable closures for async tests (an error in Swift 6 mode); XCTest runs one test
// method at a time on an instance, and the tests keep no mutable state in it.
final class IntegrationTests: XCTestCase, @unchecked Sendable {
    func testTenMegabytesBothWaysOverTwoPaths() async throws {
        let net = try BraidTestNetwork()
        let client = try makeClient(net, .aggregate)
        let conn = try await client.connect(via: net.gateway(), target: net.echoTarget())
        let data = pattern(10 << 20)
        let got = try await within(120, "10 MB echo") { try await echo(conn, data) }
        XCTAssertEqual(got.count, data.count)
        XCTAssertEqual(SHA256.hex(got), SHA256.hex(data))
        let stats = conn.stats
        XCTAssertTrue(stats.mptcp)
        XCTAssertGreaterThanOrEqual(stats.bytesReceived, UInt64(data.count))
        XCTAssertGreaterThanOrEqual(stats.bytesSent, UInt64(data.count))
        for path in net.pathNames() {
            XCTAssertGreaterThan(try net.pathDeliveredBytes(name: path), 0, "\(path) carried nothing")
        }
        XCTAssertEqual(net.relayedConnections(), 1)
        await conn.close()
    }

    func testSha256() {
        XCTAssertEqual(SHA256.hex(Data("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(Data()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    func testPathSwitchedEventWhenTheOSReportsWifiLost() async throws {
        let net = try BraidTestNetwork()
        let client = try makeClient(net, .handover)
        let conn = try await client.connect(via: net.gateway(), target: net.echoTarget())
        let wifi = try XCTUnwrap(client.interfaces.first { $0.interface.kind == .wifi }).pathId
        let first = try await echoRound(conn, 200_000)
        XCTAssertEqual(first, 200_000)
        try net.killPath(name: "wifi")
        client.interfaceLost(pathId: wifi)
        let (event, seen) = try await firstEvent(conn, within: 10, matching: isPathSwitch)
        guard case .pathSwitched(let from, let to, let reason) = event else { return XCTFail("\(event)") }
        XCTAssertEqual(from, wifi, "\(seen)")
        XCTAssertNotEqual(to, wifi, "\(seen)")
        XCTAssertEqual(reason, .interfaceLost)
        let after = try await within(30, "echo after the switch") { try await echoRound(conn, 500_000) }
        XCTAssertEqual(after, 500_000)
        XCTAssertTrue(conn.paths.allSatisfy { $0.kind == .cellular }, "\(conn.paths)")
        await conn.close()
    }

    func testPathSwitchedEventWhenWifiDiesSilently() async throws {
        let net = try BraidTestNetwork()
        let client = try makeClient(net, .handover)
        let conn = try await client.connect(via: net.gateway(), target: net.echoTarget())
        let wifi = try XCTUnwrap(client.interfaces.first { $0.interface.kind == .wifi }).pathId
        let first = try await echoRound(conn, 200_000)
        XCTAssertEqual(first, 200_000)
        // Nobody tells Braid: it has to notice by itself, while data is in flight.
        try net.killPath(name: "wifi")
        async let traffic = echoRound(conn, 500_000)
        let (event, seen) = try await firstEvent(conn, within: 20, matching: isPathSwitch)
        guard case .pathSwitched(let from, let to, let reason) = event else { return XCTFail("\(event)") }
        XCTAssertEqual(from, wifi, "\(seen)")
        XCTAssertNotEqual(to, wifi, "\(seen)")
        XCTAssertNotEqual(reason, .interfaceLost)
        let after = try await traffic
        XCTAssertEqual(after, 500_000)
        await conn.close()
    }

    func testEventsIsOneStreamPerConnection() async throws {
        let net = try BraidTestNetwork()
        let client = try makeClient(net, .handover)
        let conn = try await client.connect(via: net.gateway(), target: net.echoTarget())
        // Looking at the property must not start anything that eats events.
        for _ in 0..<3 { _ = conn.events }
        let (first, _) = try await firstEvent(conn, within: 5) { _ in true }
        XCTAssertEqual(first, .connected)
        let wifi = try XCTUnwrap(client.interfaces.first { $0.interface.kind == .wifi }).pathId
        client.interfaceLost(pathId: wifi)
        // A second loop continues where the first stopped: `.connected` does not come again.
        let (_, seen) = try await firstEvent(conn, within: 10, matching: isPathSwitch)
        XCTAssertFalse(seen.contains(.connected), "\(seen)")
        await conn.close()
    }

    func testCancelledEventLoopEndsPromptly() async throws {
        let net = try BraidTestNetwork()
        let client = try makeClient(net, .handover)
        let conn = try await client.connect(via: net.gateway(), target: net.echoTarget())
        let loop = Task {
            var n = 0
            for await _ in conn.events { n += 1 }
            return n
        }
        try await Task.sleep(nanoseconds: 200_000_000)
        let start = DispatchTime.now()
        loop.cancel()
        _ = await loop.value
        XCTAssertLessThan(seconds(since: start), 0.1)
        await conn.close()
    }

    func testCancelledReadReturnsWithin100msAndLosesNoBytes() async throws {
        let net = try BraidTestNetwork()
        let client = try makeClient(net, .handover)
        let conn = try await client.connect(via: net.gateway(), target: net.echoTarget())
        // Nothing was written, so nothing comes back: the read waits.
        let reader = Task { try await conn.read() }
        try await Task.sleep(nanoseconds: 200_000_000)
        let start = DispatchTime.now()
        reader.cancel()
        do {
            let d = try await reader.value
            XCTFail("read returned \(String(describing: d))")
        } catch is CancellationError {
        }
        let took = seconds(since: start)
        XCTAssertLessThan(took, 0.1, "cancelled read took \(took) s")
        // Still usable, and the echo arrives whole.
        let n = try await echoRound(conn, 100_000)
        XCTAssertEqual(n, 100_000)
        await conn.close()
    }

    func testCancelledConnectReturnsPromptly() async throws {
        let net = try BraidTestNetwork()
        for path in net.pathNames() { try net.killPath(name: path) }
        let client = try makeClient(net, .handover, timeoutMs: 10_000)
        let connect = Task { try await client.connect(via: net.gateway(), target: net.echoTarget()) }
        try await Task.sleep(nanoseconds: 200_000_000)
        let start = DispatchTime.now()
        connect.cancel()
        do {
            _ = try await connect.value
            XCTFail("connected over dead paths")
        } catch is CancellationError {
        }
        XCTAssertLessThan(seconds(since: start), 0.1)
    }

    func testCancelledWriteReturnsPromptly() async throws {
        let net = try BraidTestNetwork()
        let client = try makeClient(net, .handover)
        let conn = try await client.connect(via: net.gateway(), target: net.echoTarget())
        for path in net.pathNames() { try net.killPath(name: path) }
        // Nothing is acknowledged any more: the send buffer fills and a write waits.
        let chunk = pattern(1 << 20)
        let writer = Task {
            var written = 0
            while written < 256 {
                try await conn.write(chunk)
                written += 1
            }
        }
        try await Task.sleep(nanoseconds: 500_000_000)
        let start = DispatchTime.now()
        writer.cancel()
        do {
            try await writer.value
            XCTFail("256 MB written over dead paths")
        } catch is CancellationError {
        }
        XCTAssertLessThan(seconds(since: start), 0.1)
        conn.abort()
    }

    func testRefusedAndForbiddenTargetsThrowTypedErrorsWithMessages() async throws {
        let net = try BraidTestNetwork()
        let client = try makeClient(net, .handover)
        do {
            _ = try await client.connect(via: net.gateway(), target: net.refusedTarget())
            XCTFail("refused target connected")
        } catch let e as BraidError {
            guard case .Refused(let m) = e else { return XCTFail("expected Refused, got \(e)") }
            XCTAssertTrue(m.contains(net.refusedTarget()), m)
            XCTAssertEqual(e.localizedDescription, m)
        }
        do {
            _ = try await client.connect(via: net.gateway(), target: net.forbiddenTarget())
            XCTFail("forbidden target connected")
        } catch let e as BraidError {
            guard case .NotAllowed(let m) = e else { return XCTFail("expected NotAllowed, got \(e)") }
            XCTAssertTrue(m.contains("does not allow"), m)
            XCTAssertFalse(e.localizedDescription.contains("BraidFFI"), e.localizedDescription)
        }
        XCTAssertEqual(net.refusedConnections(), 2)
    }

    func testManyConcurrentConnections() async throws {
        let net = try BraidTestNetwork()
        let client = try makeClient(net, .aggregate)
        let gateway = net.gateway(), target = net.echoTarget()
        let count = 8
        let ok = try await within(120, "\(count) connections") {
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<count {
                    group.addTask {
                        let conn = try await client.connect(via: gateway, target: target)
                        let data = pattern(256 * 1024, seed: i)
                        let got = try await echo(conn, data)
                        await conn.close()
                        return SHA256.hex(got) == SHA256.hex(data)
                    }
                }
                var ok = 0
                for try await same in group where same { ok += 1 }
                return ok
            }
        }
        XCTAssertEqual(ok, count)
        XCTAssertEqual(net.relayedConnections(), UInt64(count))
    }

    func testLogHandlerReceivesLines() async throws {
        let lines = Lines()
        try BraidLog.start(level: .debug) { level, target, message in
            lines.add("\(level) \(target) \(message)")
        }
        defer { try? BraidLog.start(level: .off) }
        let net = try BraidTestNetwork()
        let client = try makeClient(net, .handover)
        let conn = try await client.connect(via: net.gateway(), target: net.echoTarget())
        await conn.close()
        let start = DispatchTime.now()
        while lines.count == 0 && seconds(since: start) < 5 {
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        XCTAssertGreaterThan(lines.count, 0, "no log line within 5 s")
    }
}
