// Interface events from NWPathMonitor, with the interface indexes Braid binds sockets to.
// Apple platforms only: elsewhere (the Linux CI) the rest of the layer builds without it.

#if canImport(Network)
import BraidFFI
import Foundation
import Network

// ffi-check: not-ffi wiredEthernet

/// Watches WiFi, wired Ethernet and cellular with `NWPathMonitor` and tells a
/// `BraidClient` when one comes or goes. Interfaces carry their index (`NWInterface.index`):
/// Braid binds each path's socket to it (`IP_BOUND_IF`), and it is the path id, so a loss
/// reaches the right path.
///
/// ```swift
/// let client = try await BraidClient.withNetworkMonitor()   // does all of this for you
/// ```
// @unchecked: every mutable property is touched only on `queue` (a serial queue), which is
// what makes sharing it between threads safe.
public final class BraidNetworkMonitor: @unchecked Sendable {
    /// Preferred first: the order interfaces are given to the client in.
    /// Computed, not stored: a stored static needs a Sendable type in Swift 6 mode.
    static var watched: [NWInterface.InterfaceType] { [.wifi, .wiredEthernet, .cellular] }

    private let queue = DispatchQueue(label: "org.braid.network-monitor")
    // Everything below is touched on `queue` only.
    private var monitors: [NWPathMonitor] = []
    /// Usable interfaces per watched type (same order as `watched`).
    private var usable: [[BraidInterface]] = Array(repeating: [], count: BraidNetworkMonitor.watched.count)
    private var firstUpdates = Set<Int>()
    private var waiting: [CheckedContinuation<[BraidInterface], Never>] = []
    private weak var client: BraidClient?
    /// What the client was told: interface index -> path id.
    private var reported: [UInt32: UInt32] = [:]

    public init() {}

    deinit {
        monitors.forEach { $0.cancel() }
    }

    /// Starts watching; returns the interfaces usable now, preferred first, once every
    /// monitor has reported (or after a second).
    public func start() async -> [BraidInterface] {
        await withCheckedContinuation { continuation in
            queue.async {
                self.waiting.append(continuation)
                if self.monitors.isEmpty {
                    self.startMonitors()
                } else if self.firstUpdates.count == Self.watched.count {
                    self.resumeWaiting()
                }
            }
        }
    }

    /// From now on, `client` hears about every interface that comes or goes.
    public func attach(to client: BraidClient) {
        queue.async {
            self.client = client
            for entry in client.interfaces {
                if let index = entry.interface.index {
                    self.reported[index] = entry.pathId
                }
            }
            self.sync()
        }
    }

    /// Stops watching.
    public func stop() {
        queue.async {
            self.monitors.forEach { $0.cancel() }
            self.monitors = []
            self.client = nil
        }
    }

    /// The interfaces usable now, preferred first.
    var current: [BraidInterface] {
        usable.flatMap { $0 }
    }

    private func startMonitors() {
        for (i, type) in Self.watched.enumerated() {
            let m = NWPathMonitor(requiredInterfaceType: type)
            // Captures the index only (Int is Sendable; the handler is @Sendable in Swift 6).
            m.pathUpdateHandler = { [weak self] path in
                guard let self else { return }
                let wanted = Self.watched[i]
                let ifaces = path.status == .satisfied
                    ? path.availableInterfaces.filter { $0.type == wanted }
                    : []
                self.usable[i] = ifaces.map(Self.describe)
                self.firstUpdates.insert(i)
                if self.firstUpdates.count == Self.watched.count {
                    self.resumeWaiting()
                }
                self.sync()
            }
            m.start(queue: queue)
            monitors.append(m)
        }
        // A monitor for a type the device lacks may be slow to say so: do not wait forever.
        queue.asyncAfter(deadline: .now() + 1) { self.resumeWaiting() }
    }

    private func resumeWaiting() {
        let now = current
        let w = waiting
        waiting = []
        w.forEach { $0.resume(returning: now) }
    }

    /// Tells the client what changed since it was last told.
    private func sync() {
        guard let client else { return }
        let now = current
        let indexes = Set(now.compactMap(\.index))
        for (index, pathId) in reported where !indexes.contains(index) {
            client.interfaceLost(pathId: pathId)
            reported[index] = nil
        }
        for iface in now {
            guard let index = iface.index, reported[index] == nil else { continue }
            if let pathId = try? client.interfaceAvailable(iface) {
                reported[index] = pathId
            }
        }
    }

    static func describe(_ iface: NWInterface) -> BraidInterface {
        BraidFFI.BraidInterface(kind: kind(of: iface.type), name: iface.name, index: UInt32(clamping: iface.index))
    }

    static func kind(of type: NWInterface.InterfaceType) -> InterfaceKind {
        switch type {
        case .wifi: return BraidFFI.InterfaceKind.wifi
        case .cellular: return BraidFFI.InterfaceKind.cellular
        case .wiredEthernet: return BraidFFI.InterfaceKind.wired
        default: return BraidFFI.InterfaceKind.other
        }
    }
}

extension BraidClient {
    /// A client whose interfaces come from a `BraidNetworkMonitor`, which keeps telling it
    /// about interfaces that come and go for as long as the client lives.
    public static func withNetworkMonitor(config: BraidConfig = .defaults()) async throws -> BraidClient {
        let monitor = BraidNetworkMonitor()
        var config = config
        let now = await monitor.start()
        if config.interfaces.isEmpty {
            config.interfaces = now
        }
        let client = BraidClient(ffi: try BraidFFI.BraidClient(config: config, binder: nil), companion: monitor)
        monitor.attach(to: client)
        return client
    }
}
#endif
