// BraidProxy: a local SOCKS5 / HTTP CONNECT proxy in the library, and the one line that
// sends a URLSession through it.

import BraidFFI
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Network)
import Network
#endif

public typealias BraidProxyConfig = BraidFFI.BraidProxyConfig
public typealias BraidProxyStats = BraidFFI.BraidProxyStats

extension BraidClient {
    /// Starts a local proxy (SOCKS5 and HTTP CONNECT on one port of 127.0.0.1) that turns
    /// every connection of the app's own HTTP stack into a Braid connection through
    /// `gateway`, with this client's interfaces, service type, cellular rules and token.
    /// Then: `URLSession(configuration: proxy.sessionConfiguration())`.
    public func startProxy(via gateway: String, config: BraidProxyConfig = BraidProxyConfig()) async throws -> BraidProxy {
        BraidProxy(try await ffi.startProxy(gateway: gateway, config: config), config: config)
    }
}

/// A running local proxy (from `BraidClient.startProxy`). It stops when stopped or released;
/// connections already open go on.
public final class BraidProxy: Sendable {
    let ffi: BraidFFI.BraidProxy
    private let username: String?
    private let password: String?

    /// How an HTTP client talks to the proxy.
    public enum Kind: Sendable {
        /// HTTP CONNECT: https:// URLs (and WebSockets over TLS) go through it; plain
        /// http:// requests do not (the proxy only tunnels).
        case httpConnect
        /// SOCKS5: every TCP connection of the session goes through it.
        case socks5
    }

    init(_ ffi: BraidFFI.BraidProxy, config: BraidProxyConfig) {
        self.ffi = ffi
        username = config.username
        password = config.password
    }

    /// The port on 127.0.0.1.
    public var port: Int { Int(ffi.port()) }
    /// `127.0.0.1:port`.
    public var address: String { ffi.address() }
    public var stats: BraidProxyStats { ffi.stats() }
    public var isRunning: Bool { ffi.isRunning() }

    /// Stops accepting; connections already open go on. Idempotent.
    public func stop() {
        ffi.stop()
    }

    /// A copy of `base` whose connections go through this proxy: on iOS 17+ / macOS 14+
    /// `proxyConfigurations` (Network framework, with the credentials when the proxy has
    /// them), before that `connectionProxyDictionary` (HTTPS keys for CONNECT, SOCKS keys
    /// for SOCKS5; credentials are then not sent, so start such a proxy without them).
    /// swift-corelibs-foundation (Linux) ignores both.
    public func sessionConfiguration(
        _ base: URLSessionConfiguration = .default, kind: Kind = .httpConnect
    ) -> URLSessionConfiguration {
        // `copy()` of a URLSessionConfiguration is always one.
        let config = (base.copy() as? URLSessionConfiguration) ?? base
        #if canImport(Network)
        if #available(iOS 17.0, macOS 14.0, tvOS 17.0, watchOS 10.0, visionOS 1.0, *) {
            config.proxyConfigurations = [networkProxy(kind)]
            return config
        }
        #endif
        config.connectionProxyDictionary = proxyDictionary(kind)
        return config
    }

    /// The `connectionProxyDictionary` for `kind` (CFNetwork's key names, spelled out: the
    /// kCFNetworkProxiesHTTPS* constants exist on macOS only).
    public func proxyDictionary(_ kind: Kind) -> [AnyHashable: Any] {
        switch kind {
        case .httpConnect:
            return ["HTTPSEnable": 1, "HTTPSProxy": "127.0.0.1", "HTTPSPort": port]
        case .socks5:
            return ["SOCKSEnable": 1, "SOCKSProxy": "127.0.0.1", "SOCKSPort": port]
        }
    }

    #if canImport(Network)
    @available(iOS 17.0, macOS 14.0, tvOS 17.0, watchOS 10.0, visionOS 1.0, *)
    func networkProxy(_ kind: Kind) -> ProxyConfiguration {
        let endpoint = NWEndpoint.hostPort(host: "127.0.0.1", port: NWEndpoint.Port(integerLiteral: UInt16(port)))
        var proxy = kind == .httpConnect
            ? ProxyConfiguration(httpCONNECTProxy: endpoint)
            : ProxyConfiguration(socksv5Proxy: endpoint)
        if let username, let password {
            proxy.applyCredential(username: username, password: password)
        }
        return proxy
    }
    #endif
}
