// Interface events from NWPathMonitor, with the interface indexes Braid binds sockets to.
// Apple platforms only: elsewhere (the Linux CI) the rest of the layer builds without it.

#if canImport(Network)
import BraidFFI
import Darwin
import Foundation
import Network

// ffi-check: not-ffi wiredEthernet

/// Watches WiFi, wired Ethernet and cellular with `NWPathMonitor` and tells a
/// `BraidClient` when one comes or goes. Interfaces carry their index (`NWInterface.index`):
/// Braid binds each path's socket to it (`IP_BOUND_IF`), and it is the path id, so a loss
/// reaches the right path.
///
/// Interfaces are tracked by index *and* address set: when the addresses of an interface
/// change (a WiFi roam, a new IPv6 prefix) the client hears lost + available and rebuilds
/// the path. Low Data Mode (`isConstrained`) keeps cellular and other expensive interfaces
/// out unless `useExpensiveWhenConstrained`; with `allowExpensive` false (the app's
/// `CellularRules.allowed`), they are never reported.
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
    /// Usable interfaces per watched type (same order as `watched`), with their addresses.
    private var usable: [[Seen]] = Array(repeating: [], count: BraidNetworkMonitor.watched.count)
    private var firstUpdates = Set<Int>()
    private var waiting: [CheckedContinuation<[BraidInterface], Never>] = []
    private weak var client: BraidClient?
    /// What the client was told: interface index -> (path id, addresses then).
    private var reported: [UInt32: (pathId: UInt32, addresses: Set<String>)] = [:]
    private let allowExpensive: Bool
    private let useExpensiveWhenConstrained: Bool

    /// An interface as last seen, with what decides whether it may be used.
    struct Seen {
        let iface: BraidInterface
        let addresses: Set<String>
        let expensive: Bool
        let constrained: Bool
    }

    /// `allowExpensive`: the app's `CellularRules.allowed`. `useExpensiveWhenConstrained`:
    /// use cellular even in Low Data Mode (off by default).
    public init(allowExpensive: Bool = true, useExpensiveWhenConstrained: Bool = false) {
        self.allowExpensive = allowExpensive
        self.useExpensiveWhenConstrained = useExpensiveWhenConstrained
    }

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
                    self.reported[index] = (entry.pathId, Self.addresses(of: entry.interface.name))
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

    /// The interfaces usable now, preferred first, with their addresses.
    var currentSeen: [Seen] {
        usable.flatMap { $0 }.filter {
            Self.allowed(expensive: $0.expensive, constrained: $0.constrained,
                         allowExpensive: allowExpensive, whenConstrained: useExpensiveWhenConstrained)
        }
    }

    /// The interfaces usable now, preferred first.
    var current: [BraidInterface] {
        currentSeen.map(\.iface)
    }

    /// Data-saving rules: expensive interfaces only when the app allows them, and in Low Data
    /// Mode only when it opted in.
    static func allowed(expensive: Bool, constrained: Bool, allowExpensive: Bool, whenConstrained: Bool) -> Bool {
        guard expensive else { return true }
        return allowExpensive && (!constrained || whenConstrained)
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
                self.usable[i] = ifaces.map {
                    Seen(iface: Self.describe($0), addresses: Self.addresses(of: $0.name),
                         expensive: path.isExpensive || wanted == .cellular,
                         constrained: path.isConstrained)
                }
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
        let now = currentSeen
        var byIndex: [UInt32: Set<String>] = [:]
        for seen in now {
            if let index = seen.iface.index { byIndex[index] = seen.addresses }
        }
        // Gone, or the same interface with other addresses (a roam): lost, then available
        // again below, so the engine builds the path on the new address.
        for (index, old) in reported where byIndex[index] != old.addresses {
            client.interfaceLost(pathId: old.pathId)
            reported[index] = nil
        }
        for seen in now {
            // No address yet: nothing could be sent from it; the next update brings one.
            guard let index = seen.iface.index, reported[index] == nil, !seen.addresses.isEmpty else { continue }
            if let pathId = try? client.interfaceAvailable(seen.iface) {
                reported[index] = (pathId, seen.addresses)
            }
        }
    }

    /// The IPv4 and IPv6 addresses of the interface named `name` (link-local ones excluded:
    /// they do not change on a roam and route nowhere).
    static func addresses(of name: String?) -> Set<String> {
        guard let name else { return [] }
        var out = Set<String>()
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var cur: UnsafeMutablePointer<ifaddrs>? = first
        while let ifa = cur {
            defer { cur = ifa.pointee.ifa_next }
            guard String(cString: ifa.pointee.ifa_name) == name, let sa = ifa.pointee.ifa_addr else { continue }
            let family = Int32(sa.pointee.sa_family)
            guard family == AF_INET || family == AF_INET6 else { continue }
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            let len = socklen_t(family == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
            guard getnameinfo(sa, len, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 else { continue }
            let text = String(cString: host)
            if text.hasPrefix("fe80:") { continue }
            out.insert(text)
        }
        return out
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
        // The app's cellular switch also keeps expensive interfaces from being reported.
        let monitor = BraidNetworkMonitor(allowExpensive: config.cellular.allowed)
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
