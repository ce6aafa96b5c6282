// BraidProxy with an HTTP request through it. swift-corelibs-foundation's URLSession (Linux)
// ignores `connectionProxyDictionary` (tried with Swift 6.0.3: with SOCKS or HTTPS proxy
// keys set, requests still go straight to the host; only libcurl's `all_proxy` environment
// variable reaches it), so these tests speak SOCKS5 (RFC 1928) and HTTP CONNECT themselves
// over a plain socket, then HTTP/1.1 to the test network's HTTP server.

import Braid
import BraidTesting
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

struct SocketError: Error, CustomStringConvertible {
    let description: String
}

/// A blocking TCP socket to 127.0.0.1:`port`.
final class TestSocket {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SocketError(description: "socket: \(errno)") }
        var tv = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard r == 0 else {
            close(fd)
            throw SocketError(description: "connect to port \(port): errno \(errno)")
        }
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw SocketError(description: "write: errno \(errno)") }
            off += n
        }
    }

    /// Exactly `count` bytes.
    func receive(_ count: Int) throws -> [UInt8] {
        var out = [UInt8]()
        while out.count < count {
            let chunk = try receiveSome(count - out.count)
            guard !chunk.isEmpty else { throw SocketError(description: "closed after \(out.count) of \(count) bytes") }
            out += chunk
        }
        return out
    }

    /// Up to `max` bytes; empty at end of stream.
    func receiveSome(_ max: Int = 65536) throws -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: max)
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, max) }
        guard n >= 0 else { throw SocketError(description: "read: errno \(errno)") }
        return Array(buf[0..<n])
    }

    func receiveToEnd() throws -> [UInt8] {
        var out = [UInt8]()
        while true {
            let chunk = try receiveSome()
            if chunk.isEmpty { return out }
            out += chunk
        }
    }
}

/// SOCKS5 CONNECT to `host`:`port` by name (the gateway resolves it); throws on a failure
/// reply, naming the reply code.
func socks5Connect(_ s: TestSocket, host: String, port: Int) throws {
    try s.send([5, 1, 0])
    guard try s.receive(2) == [5, 0] else { throw SocketError(description: "no SOCKS5 method accepted") }
    let name = Array(host.utf8)
    try s.send([5, 1, 0, 3, UInt8(name.count)] + name + [UInt8(port >> 8), UInt8(port & 0xff)])
    let reply = try s.receive(4)
    guard reply[1] == 0 else { throw SocketError(description: "SOCKS5 reply \(reply[1])") }
    // The bound address: IPv4 (4 bytes) or IPv6 (16), then the port.
    _ = try s.receive((reply[3] == 4 ? 16 : 4) + 2)
}

/// HTTP CONNECT to `target`; returns the status line.
func httpConnect(_ s: TestSocket, target: String) throws -> String {
    try s.send(Array("CONNECT \(target) HTTP/1.1\r\nHost: \(target)\r\n\r\n".utf8))
    var head = [UInt8]()
    while !(head.count >= 4 && Array(head.suffix(4)) == Array("\r\n\r\n".utf8)) {
        head += try s.receive(1)
    }
    return String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n")[0]
}

/// GET `path` over an open tunnel; returns the status line and the body.
func httpGet(_ s: TestSocket, host: String, path: String) throws -> (String, [UInt8]) {
    try s.send(Array("GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n".utf8))
    let all = try s.receiveToEnd()
    let sep = Array("\r\n\r\n".utf8)
    guard let end = (0...(all.count - 4)).first(where: { Array(all[$0..<$0 + 4]) == sep }) else {
        throw SocketError(description: "no response head in \(all.count) bytes")
    }
    let head = String(decoding: all[0..<end], as: UTF8.self)
    return (head.components(separatedBy: "\r\n")[0], Array(all[(end + 4)...]))
}

// @unchecked Sendable: see IntegrationTests.
final class ProxyTests: XCTestCase, @unchecked Sendable {
    func testHttpRequestThroughTheProxyBySocks5AndConnect() async throws {
        let net = try BraidTestNetwork()
        let client = try makeClient(net, .handover)
        let proxy = try await client.startProxy(via: net.gateway())
        XCTAssertEqual(proxy.address, "127.0.0.1:\(proxy.port)")
        let target = net.httpTarget()
        let port = Int(target.split(separator: ":").last!)!

        let socks = try TestSocket(port: proxy.port)
        try socks5Connect(socks, host: "localhost", port: port)
        let (status, body) = try httpGet(socks, host: "localhost", path: "/bytes/300000")
        XCTAssertEqual(status, "HTTP/1.1 200 OK")
        XCTAssertEqual(body, (0..<300_000).map { UInt8($0 % 251) })

        let tunnel = try TestSocket(port: proxy.port)
        XCTAssertTrue(try httpConnect(tunnel, target: target).hasPrefix("HTTP/1.1 200"))
        let (status2, greeting) = try httpGet(tunnel, host: target, path: "/")
        XCTAssertEqual(status2, "HTTP/1.1 200 OK")
        XCTAssertEqual(String(decoding: greeting, as: UTF8.self), net.httpsGreeting())

        // Not allowed by the gateway: answered with a status, not a silent close.
        let denied = try TestSocket(port: proxy.port)
        XCTAssertTrue(try httpConnect(denied, target: net.forbiddenTarget()).hasPrefix("HTTP/1.1 403"))

        let stats = proxy.stats
        XCTAssertEqual(stats.accepted, 3)
        XCTAssertEqual(stats.failed, 1)
        proxy.stop()
        XCTAssertFalse(proxy.isRunning)
        XCTAssertThrowsError(try TestSocket(port: proxy.port))
    }

    func testSessionConfigurationCarriesTheProxy() async throws {
        let net = try BraidTestNetwork()
        let proxy = try await makeClient(net, .handover).startProxy(via: net.gateway())
        let socks = proxy.sessionConfiguration(.ephemeral, kind: .socks5)
        let dict = try XCTUnwrap(socks.connectionProxyDictionary)
        XCTAssertEqual(dict["SOCKSPort"] as? Int, proxy.port)
        XCTAssertEqual(dict["SOCKSProxy"] as? String, "127.0.0.1")
        let connect = proxy.sessionConfiguration().connectionProxyDictionary
        XCTAssertEqual(connect?["HTTPSPort"] as? Int, proxy.port)
        XCTAssertNil(connect?["SOCKSPort"])
    }
}
