// connectTls against the test network's TLS echo server (certificate signed by its test CA).

import Braid
import BraidTesting
import Foundation
import XCTest

// @unchecked Sendable: see IntegrationTests.
final class TlsTests: XCTestCase, @unchecked Sendable {
    func testTlsEchoWithTheTestCaAndAlpn() async throws {
        let net = try BraidTestNetwork()
        let client = try makeClient(net, .aggregate)
        let options = BraidTlsOptions(useSystemRoots: false, extraRootsPem: [net.testCaPem()], alpn: ["h2"])
        let conn = try await client.connectTls(
            via: net.gateway(), target: net.tlsEchoTarget(), serverName: "localhost", options: options)
        XCTAssertEqual(conn.alpnProtocol, "h2")
        let data = pattern(200_000, seed: 5)
        let got = try await echo(conn, data)
        XCTAssertEqual(got, data)
        // TLS records are bigger than the plaintext they carry: the stats are the Braid
        // connection's, under TLS.
        XCTAssertGreaterThan(conn.stats.bytesReceived, UInt64(data.count))
        await conn.close()
    }

    func testAnUntrustedCertificateThrowsCertificateRejected() async throws {
        let net = try BraidTestNetwork()
        let client = try makeClient(net, .handover)
        let options = BraidTlsOptions(useSystemRoots: false, extraRootsDer: [net.wrongCaDer()])
        do {
            _ = try await client.connectTls(
                via: net.gateway(), target: net.tlsEchoTarget(), serverName: "localhost", options: options)
            XCTFail("a certificate from an untrusted CA was accepted")
        } catch let e as BraidError {
            guard case .CertificateRejected(let m) = e else {
                return XCTFail("expected CertificateRejected, got \(e)")
            }
            XCTAssertTrue(m.contains("UnknownIssuer"), m)
            XCTAssertEqual(e.localizedDescription, e.message)
        }
    }
}
