// The idiomatic Swift layer over the generated bindings (module BraidFFI): async/await,
// AsyncStream of events, and the generated records and enums under their own names.
//
// Convention checked by `cargo xtask test-foreign`: generated objects are held in
// properties named `ffi`, and generated names are spelled `BraidFFI.Name`.

import BraidFFI
import Foundation

public typealias BraidConfig = BraidFFI.BraidConfig
public typealias BraidInterface = BraidFFI.BraidInterface
public typealias BraidInterfaceEntry = BraidFFI.BraidInterfaceEntry
public typealias BraidPathInfo = BraidFFI.BraidPathInfo
public typealias BraidEvent = BraidFFI.BraidEvent
public typealias BraidStats = BraidFFI.BraidStats
public typealias BraidPathStats = BraidFFI.BraidPathStats
public typealias BraidPath = BraidFFI.BraidPath
public typealias CellularRules = BraidFFI.CellularRules
public typealias ServiceType = BraidFFI.ServiceType
public typealias InterfaceKind = BraidFFI.InterfaceKind
public typealias SwitchReason = BraidFFI.SwitchReason
public typealias CloseReason = BraidFFI.CloseReason
public typealias LogLevel = BraidFFI.LogLevel
public typealias LogSink = BraidFFI.LogSink
public typealias SocketBinder = BraidFFI.SocketBinder
public typealias CallbackError = BraidFFI.CallbackError
/// How `connectTls` checks the server (system trust, or only the roots given) and which
/// application protocols it offers (ALPN).
public typealias BraidTlsOptions = BraidFFI.BraidTlsOptions
/// Every Braid failure (`.Refused`, `.NotAllowed`, `.Unauthorized` (the gateway wants a
/// `BraidConfig.token`), `.Timeout`, `.Closed`, `.CertificateRejected` (TLS), ...); `message` (and `localizedDescription`)
/// says what happened in words. A cancelled call throws `CancellationError` instead of
/// `.Cancelled`.
public typealias BraidError = BraidFFI.BraidError

extension BraidFFI.BraidError {
    /// What went wrong, for a person.
    public var message: String {
        switch self {
        case .InvalidArgument(let m), .Resolve(let m), .NoUsableInterface(let m), .Interface(let m),
             .Timeout(let m), .ConnectFailed(let m), .NotAllowed(let m), .Unauthorized(let m),
             .Refused(let m), .Unreachable(let m), .Closed(let m), .CertificateRejected(let m),
             .Tls(let m), .Cancelled(let m),
             .Unsupported(let m), .Logging(let m), .Io(let m), .Internal(let m):
            return m
        }
    }
}

// Without this, `localizedDescription` is the type's debug spelling
// ("BraidFFI.BraidError.Refused(message: ...)"), which is what apps show in alerts.
extension BraidFFI.BraidError: LocalizedError {
    public var errorDescription: String? { message }
}

extension BraidFFI.CallbackError: LocalizedError {
    public var errorDescription: String? {
        switch self {
        case .Failed(let reason): return reason
        }
    }
}

extension BraidFFI.BraidConfig {
    /// The defaults, with `serviceType` (the one setting without a default).
    public static func defaults(_ serviceType: ServiceType = .handover) -> BraidConfig {
        var c = BraidFFI.braidDefaultConfig()
        c.serviceType = serviceType
        return c
    }
}

/// Runs one async Braid call so that cancelling the current task reaches Rust: the
/// generated async code waits for the Rust future to finish and never cancels it, so the
/// call gets a token that task cancellation cancels, and the call ends at once.
func cancellable<T>(_ call: (BraidFFI.BraidCancelToken) async throws -> T) async throws -> T {
    let token = BraidFFI.BraidCancelToken()
    do {
        return try await withTaskCancellationHandler {
            try await call(token)
        } onCancel: {
            token.cancel()
        }
    } catch BraidFFI.BraidError.Cancelled {
        throw CancellationError()
    }
}

/// Opens connections that use WiFi and cellular at once. One per app is enough.
public final class BraidClient: Sendable {
    let ffi: BraidFFI.BraidClient
    /// Lives as long as the client (the network monitor from `withNetworkMonitor`).
    private let companion: (any Sendable)?

    /// A client with `config`. Without interfaces in it, one path follows the default route;
    /// `withNetworkMonitor` (Apple platforms) fills them in from the system instead.
    public convenience init(config: BraidConfig = .defaults(), binder: SocketBinder? = nil) throws {
        self.init(ffi: try BraidFFI.BraidClient(config: config, binder: binder), companion: nil)
    }

    init(ffi: BraidFFI.BraidClient, companion: (any Sendable)?) {
        self.ffi = ffi
        self.companion = companion
    }

    /// Connects to a Braid server at `server` (`host:port`). Cancelling the task ends the
    /// attempt at once with `CancellationError`.
    public func connect(to server: String) async throws -> BraidConnection {
        BraidConnection(try await cancellable { try await ffi.connect(server: server, cancel: $0) })
    }

    /// Connects to any TCP server `target` (`host:port`) through the Braid gateway `gateway`.
    /// Cancelling the task ends the attempt at once with `CancellationError`.
    public func connect(via gateway: String, target: String) async throws -> BraidConnection {
        BraidConnection(try await cancellable {
            try await ffi.connectVia(gateway: gateway, target: target, cancel: $0)
        })
    }

    /// Connects to `target` (`host:port`) through the Braid gateway `gateway` and runs a TLS
    /// handshake that checks the server's certificate for `serverName`; the connection then
    /// carries plaintext. A certificate that fails the check throws `.CertificateRejected`.
    /// `options` default: the system's trust store. For a private CA:
    /// `BraidTlsOptions(useSystemRoots: false, extraRootsPem: [pem])`.
    public func connectTls(
        via gateway: String, target: String, serverName: String, options: BraidTlsOptions? = nil
    ) async throws -> BraidConnection {
        BraidConnection(try await cancellable {
            try await ffi.connectTls(
                gateway: gateway, target: target, serverName: serverName, options: options, cancel: $0)
        })
    }

    /// An interface came up; returns its path id (the interface index when given).
    @discardableResult
    public func interfaceAvailable(_ interface: BraidInterface) throws -> UInt32 {
        try ffi.interfaceAvailable(interface: interface)
    }

    /// The interface behind `pathId` is gone: traffic moves off it at once.
    public func interfaceLost(pathId: UInt32) {
        ffi.interfaceLost(pathId: pathId)
    }

    /// The interfaces in use, with their path ids.
    public var interfaces: [BraidInterfaceEntry] {
        ffi.interfaces()
    }
}

/// One connection: a byte stream over every usable path. Dropping it closes it gracefully.
public final class BraidConnection: Sendable {
    let ffi: BraidFFI.BraidConnection

    /// Path and state changes: one stream per connection, starting with what happened since
    /// `connect` returned. Iterate it from one task at a time; a loop that stops early
    /// (`break`) leaves the rest for the next loop. It ends after `.closed`, or when the
    /// iterating task is cancelled (then for good). Buffering: nothing is buffered in Swift;
    /// the library keeps the last 64 events from before the first iteration and up to 256
    /// not yet consumed, and a consumer slower than that skips the oldest.
    public let events: AsyncStream<BraidEvent>

    init(_ ffi: BraidFFI.BraidConnection) {
        self.ffi = ffi
        // One subscription, pulled on demand: no task runs while nobody iterates.
        let subscription = ffi.subscribe()
        events = AsyncStream(
            unfolding: { await subscription.next() },
            onCancel: { subscription.close() }
        )
    }

    /// Up to `maxLength` bytes, or nil once the peer finished sending. Cancelling the task
    /// ends a pending read at once with `CancellationError`; no bytes are lost (the next
    /// read gets them).
    public func read(maxLength: Int = 64 * 1024) async throws -> Data? {
        let max = UInt32(clamping: Swift.max(1, maxLength))
        let data = try await cancellable { try await ffi.read(maxBytes: max, cancel: $0) }
        return data.isEmpty ? nil : data
    }

    /// Reads until the peer finishes sending.
    public func readToEnd() async throws -> Data {
        var all = Data()
        while let d = try await read() {
            all.append(d)
        }
        return all
    }

    /// Writes all of `data`; returns when the connection has taken it. Cancelling the task
    /// ends it at once with `CancellationError` (part of `data` may have been sent).
    public func write(_ data: Data) async throws {
        try await cancellable { try await ffi.write(data: data, cancel: $0) }
    }

    /// No more writes: the peer reads end of stream. Reading goes on.
    public func finish() throws {
        try ffi.finish()
    }

    /// Closes gracefully: buffered data is still delivered; pending reads and writes end
    /// with `.Closed`.
    public func close() async {
        await ffi.close()
    }

    /// Tears the connection down at once.
    public func abort() {
        ffi.abort()
    }

    public var stats: BraidStats { ffi.stats() }
    public var paths: [BraidPath] { ffi.paths() }
    public var remote: String { ffi.remote() }
    /// The protocol the TLS server chose by ALPN ("h2", ...); nil for a plain connection.
    public var alpnProtocol: String? { ffi.alpnProtocol() }

    /// Changes how the connection uses its paths, live; the client's other settings stay.
    public func setServiceType(_ serviceType: ServiceType) throws {
        try ffi.setServiceType(serviceType: serviceType)
    }
}

/// Where Braid's log lines go: the platform log (os_log subsystem "org.braid" on Apple
/// platforms, stderr elsewhere) by default, or a sink.
public enum BraidLog {
    public static func start(level: LogLevel = .info, sink: LogSink? = nil) throws {
        try BraidFFI.initLogging(level: level, sink: sink)
    }

    /// Sends Braid's log lines to `handler` (on one Braid thread, in order).
    public static func start(level: LogLevel = .info, handler: @escaping @Sendable (LogLevel, String, String) -> Void) throws {
        try BraidFFI.initLogging(level: level, sink: ClosureSink(handler))
    }

    /// Lines dropped because a sink could not keep up.
    public static var dropped: UInt64 { BraidFFI.droppedLogLines() }

    public static var version: String { BraidFFI.braidVersion() }
}

private final class ClosureSink: LogSink {
    let handler: @Sendable (LogLevel, String, String) -> Void

    init(_ handler: @escaping @Sendable (LogLevel, String, String) -> Void) {
        self.handler = handler
    }

    func log(level: LogLevel, target: String, message: String) throws {
        handler(level, target, message)
    }
}
