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
/// Every Braid failure (`.Refused`, `.NotAllowed`, `.Unauthorized` (the gateway wants a
/// `BraidConfig.token`), `.Timeout`, `.Closed`, ...); `message` says what happened in words.
public typealias BraidError = BraidFFI.BraidError

extension BraidFFI.BraidError {
    /// What went wrong, for a person.
    public var message: String {
        switch self {
        case .InvalidArgument(let m), .Resolve(let m), .NoUsableInterface(let m), .Interface(let m),
             .Timeout(let m), .ConnectFailed(let m), .NotAllowed(let m), .Unauthorized(let m),
             .Refused(let m), .Unreachable(let m), .Closed(let m), .Cancelled(let m),
             .Unsupported(let m), .Logging(let m), .Io(let m), .Internal(let m):
            return m
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

/// Opens connections that use WiFi and cellular at once. One per app is enough.
public final class BraidClient: @unchecked Sendable {
    let ffi: BraidFFI.BraidClient
    /// Kept alive with the client when made by `withNetworkMonitor`.
    private var monitor: BraidNetworkMonitor?

    /// A client with `config`. Without interfaces in it, one path follows the default route;
    /// `withNetworkMonitor` fills them in from the system instead.
    public init(config: BraidConfig = .defaults(), binder: SocketBinder? = nil) throws {
        ffi = try BraidFFI.BraidClient(config: config, binder: binder)
    }

    /// A client whose interfaces come from a `BraidNetworkMonitor`, which keeps telling it
    /// about interfaces that come and go for as long as the client lives.
    public static func withNetworkMonitor(config: BraidConfig = .defaults()) async throws -> BraidClient {
        let monitor = BraidNetworkMonitor()
        var config = config
        let now = await monitor.start()
        if config.interfaces.isEmpty {
            config.interfaces = now
        }
        let client = try BraidClient(config: config)
        monitor.attach(to: client)
        client.monitor = monitor
        return client
    }

    /// Connects to a Braid server at `server` (`host:port`).
    public func connect(to server: String) async throws -> BraidConnection {
        BraidConnection(try await ffi.connect(server: server))
    }

    /// Connects to any TCP server `target` (`host:port`) through the Braid gateway `gateway`.
    public func connect(via gateway: String, target: String) async throws -> BraidConnection {
        BraidConnection(try await ffi.connectVia(gateway: gateway, target: target))
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
public final class BraidConnection: @unchecked Sendable {
    let ffi: BraidFFI.BraidConnection

    init(_ ffi: BraidFFI.BraidConnection) {
        self.ffi = ffi
    }

    /// Up to `maxLength` bytes, or nil once the peer finished sending.
    public func read(maxLength: Int = 64 * 1024) async throws -> Data? {
        let data = try await ffi.read(maxBytes: UInt32(clamping: max(1, maxLength)))
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

    /// Writes all of `data`; returns when the connection has taken it.
    public func write(_ data: Data) async throws {
        try await ffi.write(data: data)
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

    /// Changes how the connection uses its paths, live; the client's other settings stay.
    public func setServiceType(_ serviceType: ServiceType) throws {
        try ffi.setServiceType(serviceType: serviceType)
    }

    /// Path and state changes. The first stream also gets what happened since `connect`
    /// returned. Ends after `.closed`; stopping the iteration stops the stream.
    public var events: AsyncStream<BraidEvent> {
        let ffi = self.ffi.subscribe()
        return AsyncStream { continuation in
            let task = Task {
                while let event = await ffi.next() {
                    continuation.yield(event)
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in
                ffi.close()
                task.cancel()
            }
        }
    }
}

/// Where Braid's log lines go: os_log (subsystem "org.braid") by default, or a sink.
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

private final class ClosureSink: LogSink, @unchecked Sendable {
    let handler: @Sendable (LogLevel, String, String) -> Void

    init(_ handler: @escaping @Sendable (LogLevel, String, String) -> Void) {
        self.handler = handler
    }

    func log(level: LogLevel, target: String, message: String) throws {
        handler(level, target, message)
    }
}
