// Interface events from ConnectivityManager, and socket binding through each path's Network.
package io.braid

import android.content.BroadcastReceiver
import android.content.Context
import android.content.Intent
import android.content.IntentFilter
import android.net.ConnectivityManager
import android.net.LinkProperties
import android.net.Network
import android.net.NetworkCapabilities
import android.net.NetworkRequest
import android.os.Build
import android.os.ParcelFileDescriptor
import io.braid.ffi.BraidException
import io.braid.ffi.CallbackException
import java.net.Inet4Address
import java.net.Inet6Address
import java.net.InetAddress
import java.util.concurrent.ConcurrentHashMap

/**
 * Watches WiFi, cellular and Ethernet and tells a [BraidClient] when one comes or goes.
 * Prefer [BraidClient.withNetworkMonitor], which creates, attaches and closes it for you.
 *
 * - **Networks, not names:** each path is keyed by its `Network` object; [binder] binds a
 *   path's socket with that network's `Network.bindSocket`. A path whose network is not known
 *   (gone, or never seen) fails with an error instead of silently using the default network.
 * - **Roams:** a network is tracked with its address set; when the addresses change (a WiFi
 *   roam, a new IPv6 prefix) the client hears lost + available, and re-creates the path.
 * - **Data saving:** cellular is not used while Data Saver is on for this app (unless
 *   [cellularInDataSaver]), nor on a network the OS reports as blocked for this app, nor
 *   when [cellularRules] say `allowed = false`.
 * - **Cellular request:** cellular is *requested* (`requestNetwork`: Android tears mobile data
 *   down once WiFi is validated) only while a connection of the attached client is open and
 *   cellular is allowed; otherwise it is only watched.
 * - **Teardown:** every OS callback survives a closed client, a closed monitor and any order
 *   of teardown; nothing it throws reaches the connectivity thread ([lastCallbackError]).
 *
 * Needs ACCESS_NETWORK_STATE and CHANGE_NETWORK_STATE (declared in this library's manifest).
 */
class BraidNetworkMonitor @JvmOverloads constructor(
    private val context: Context,
    /** The app's cellular rules (`BraidConfig.cellular`). */
    val cellularRules: CellularRules = CellularRules(),
    /** Use cellular even while Data Saver is on for this app. Off by default. */
    val cellularInDataSaver: Boolean = false,
) : AutoCloseable {
    private val cm = context.getSystemService(Context.CONNECTIVITY_SERVICE) as ConnectivityManager
    private val lock = Any()

    private class Tracked(val iface: BraidInterface, val addresses: Set<InetAddress>, val blocked: Boolean)
    private class Reported(val pathId: UInt, val iface: BraidInterface, val addresses: Set<InetAddress>)

    // Guarded by [lock].
    private val tracked = LinkedHashMap<Network, Tracked>()
    private val reported = LinkedHashMap<Network, Reported>()
    /** Per network: the gateway address to use on it when it differs from the remote's family. */
    private val via = HashMap<Network, String>()
    private var client: BraidClient? = null
    private var watchers = ArrayList<ConnectivityManager.NetworkCallback>()
    private var cellularRequest: ConnectivityManager.NetworkCallback? = null
    private var receiver: BroadcastReceiver? = null
    private var openConnections = 0
    private var restrictBackground = ConnectivityManager.RESTRICT_BACKGROUND_STATUS_DISABLED
    private var closed = false

    /** Read by [binder] on Braid threads without [lock]: path id -> its network. */
    private val byPath = ConcurrentHashMap<UInt, Network>()
    /** The network whose interface this thread is announcing: its sockets are bound in that call. */
    private val announcing = ThreadLocal<Network?>()

    /** The last exception an OS callback swallowed (kept for diagnostics, never rethrown). */
    @Volatile
    var lastCallbackError: Throwable? = null
        private set

    /** Called (on a Braid thread) when a path's socket cannot be bound to its network. */
    @Volatile
    var onBindFailure: ((path: BraidPathInfo, reason: String) -> Unit)? = null

    /** Binds each Braid socket to the `Network` of its path; fails for a path it cannot place. */
    val binder: SocketBinder = object : SocketBinder {
        override fun bindSocket(fd: Int, path: BraidPathInfo) {
            val label = path.`interface`.name ?: path.`interface`.kind.toString()
            val network = announcing.get() ?: byPath[path.pathId]
            if (network == null) {
                fail(path, "no Android network is known for path ${path.pathId} ($label): not opened, so it cannot run over another network")
            }
            try {
                ParcelFileDescriptor.fromFd(fd).use { network.bindSocket(it.fileDescriptor) }
            } catch (e: Exception) {
                fail(path, "cannot bind a socket to the network of $label: ${e.message ?: e}")
            }
        }

        private fun fail(path: BraidPathInfo, reason: String): Nothing {
            guarded { onBindFailure?.invoke(path, reason) }
            throw CallbackException.Failed(reason)
        }
    }

    /**
     * Starts watching; returns the interfaces usable now, preferred first (WiFi, Ethernet,
     * cellular), for the client's config. Changes reach the client once it is [attach]ed.
     */
    fun start(): List<BraidInterface> {
        synchronized(lock) {
            check(!closed) { "BraidNetworkMonitor is closed" }
            if (watchers.isEmpty()) {
                restrictBackground = readRestrictBackground()
                for (network in cm.allNetworks) {
                    val caps = cm.getNetworkCapabilities(network) ?: continue
                    val lp = cm.getLinkProperties(network) ?: continue
                    update(network, caps, lp)
                }
                for (t in WATCHED) watchers.add(newCallback().also { cm.registerNetworkCallback(request(t), it) })
                receiver = object : BroadcastReceiver() {
                    override fun onReceive(context: Context, intent: Intent) = guarded {
                        synchronized(lock) {
                            if (closed) return@synchronized
                            restrictBackground = readRestrictBackground()
                            updateCellularRequest()
                            sync()
                        }
                    }
                }.also { context.registerReceiver(it, IntentFilter(ConnectivityManager.ACTION_RESTRICT_BACKGROUND_CHANGED)) }
            }
            return usable().values.map { it.iface }
        }
    }

    /** From now on, [client] hears about every interface that comes or goes. */
    fun attach(client: BraidClient) {
        synchronized(lock) {
            check(!closed) { "BraidNetworkMonitor is closed" }
            this.client?.let { if (it !== client) detachLocked(it) }
            this.client = client
            client.monitorAttached(this)
            // The interfaces the client was built with are the ones start() returned.
            for (entry in client.interfaces) {
                val hit = tracked.entries.firstOrNull { (n, t) -> t.iface == entry.`interface` && n !in reported } ?: continue
                reported[hit.key] = Reported(entry.pathId, hit.value.iface, hit.value.addresses)
                byPath[entry.pathId] = hit.key
            }
            openConnections = client.openConnections
            updateCellularRequest()
            sync()
        }
    }

    /** The client is closing: no call reaches it once this returns. */
    internal fun detach(client: BraidClient) {
        synchronized(lock) { detachLocked(client) }
    }

    private fun detachLocked(client: BraidClient) {
        if (this.client !== client) return
        this.client = null
        reported.clear()
        byPath.clear()
        openConnections = 0
        updateCellularRequest()
    }

    /** The attached client's count of open connections changed. */
    internal fun connectionsChanged(client: BraidClient, open: Int) {
        synchronized(lock) {
            if (this.client !== client || closed) return
            openConnections = open
            updateCellularRequest()
        }
    }

    /** Cellular may carry data now: the app's rules, Data Saver and the opt-in. */
    val cellularAllowedNow: Boolean
        get() = synchronized(lock) { cellularAllowed(cellularRules, restrictBackground, cellularInDataSaver) }

    /** Cellular is being requested (kept up) right now. */
    val requestingCellular: Boolean get() = synchronized(lock) { cellularRequest != null }

    /** Stops watching, releases the cellular request and forgets the client. Idempotent. */
    override fun close() {
        synchronized(lock) {
            if (closed) return
            closed = true
            client?.let { detachLocked(it); it.monitorDetached(this) }
            for (cb in watchers) unregister(cb)
            watchers.clear()
            cellularRequest?.let { unregister(it) }
            cellularRequest = null
            receiver?.let { r -> guarded { context.unregisterReceiver(r) } }
            receiver = null
            tracked.clear()
            via.clear()
        }
    }

    /**
     * The gateway address for each announced network, resolved on that network (its own DNS,
     * so an IPv6-only network gets its DNS64 answer), in the family the network can reach.
     * Blocking (DNS): call off the main thread. Returns how many networks were asked, and the
     * answers, preferred network first; networks whose lookup fails are left out.
     */
    internal fun resolveOnEachNetwork(host: String): Pair<Int, List<Pair<Network, InetAddress>>> {
        val networks = synchronized(lock) {
            reported.keys.mapNotNull { n -> tracked[n]?.let { Triple(n, it.addresses, order(it.iface.kind)) } }
                .sortedBy { it.third }
                .map { it.first to it.second }
        }
        return networks.size to networks.mapNotNull { (n, local) ->
            val found = try {
                n.getAllByName(host).toList()
            } catch (_: Exception) {
                emptyList()
            }
            pickAddress(found, local)?.let { n to it }
        }
    }

    /**
     * Sends a network's paths to [address] (`ip:port`) instead of the connection's remote:
     * the gateway as this network reaches it. Re-announces the network when it changes.
     */
    internal fun setVia(network: Network, address: String?) {
        synchronized(lock) {
            if (closed) return
            if (address == null) via.remove(network) else via[network] = address
            sync()
        }
    }

    private fun request(transport: Int) = NetworkRequest.Builder()
        .addCapability(NetworkCapabilities.NET_CAPABILITY_INTERNET)
        .addTransportType(transport)
        .build()

    private fun unregister(cb: ConnectivityManager.NetworkCallback) = guarded {
        try {
            cm.unregisterNetworkCallback(cb)
        } catch (_: IllegalArgumentException) {
            // Already unregistered.
        }
    }

    private fun newCallback() = object : ConnectivityManager.NetworkCallback() {
        override fun onAvailable(network: Network) = guarded {
            // API 23-25 do not follow onAvailable with the properties: ask for them.
            val caps = cm.getNetworkCapabilities(network) ?: return@guarded
            val lp = cm.getLinkProperties(network) ?: return@guarded
            changed(network, caps, lp)
        }

        override fun onCapabilitiesChanged(network: Network, networkCapabilities: NetworkCapabilities) = guarded {
            val lp = cm.getLinkProperties(network) ?: return@guarded
            changed(network, networkCapabilities, lp)
        }

        override fun onLinkPropertiesChanged(network: Network, linkProperties: LinkProperties) = guarded {
            val caps = cm.getNetworkCapabilities(network) ?: return@guarded
            changed(network, caps, linkProperties)
        }

        override fun onBlockedStatusChanged(network: Network, blocked: Boolean) = guarded {
            synchronized(lock) {
                if (closed) return@synchronized
                val t = tracked[network] ?: return@synchronized
                tracked[network] = Tracked(t.iface, t.addresses, blocked)
                sync()
            }
        }

        override fun onLost(network: Network) = guarded {
            synchronized(lock) {
                if (closed) return@synchronized
                tracked.remove(network)
                via.remove(network)
                sync()
            }
        }
    }

    private fun changed(network: Network, caps: NetworkCapabilities, lp: LinkProperties) {
        synchronized(lock) {
            if (closed) return
            update(network, caps, lp)
            sync()
        }
    }

    /** Records what the network is now. Called with [lock] held. */
    private fun update(network: Network, caps: NetworkCapabilities, lp: LinkProperties) {
        val iface = if (caps.hasCapability(NetworkCapabilities.NET_CAPABILITY_INTERNET)) describe(caps, lp) else null
        if (iface == null) {
            tracked.remove(network)
            return
        }
        tracked[network] = Tracked(iface, addresses(lp), tracked[network]?.blocked ?: false)
    }

    /** The networks the client should use now, preferred first. Called with [lock] held. */
    private fun usable(): Map<Network, Tracked> {
        val cellOk = cellularAllowed(cellularRules, restrictBackground, cellularInDataSaver)
        return tracked.entries
            .filter { (_, t) -> !t.blocked && t.addresses.isNotEmpty() && (t.iface.kind != InterfaceKind.CELLULAR || cellOk) }
            .sortedBy { order(it.value.iface.kind) }
            .associate { (n, t) -> n to Tracked(t.iface.copy(via = via[n]), t.addresses, t.blocked) }
    }

    /** Requests cellular while a connection is open and cellular may be used. Called with [lock] held. */
    private fun updateCellularRequest() {
        val want = !closed && watchers.isNotEmpty() && client != null && openConnections > 0 &&
            cellularAllowed(cellularRules, restrictBackground, cellularInDataSaver)
        val current = cellularRequest
        if (want && current == null) {
            val cb = newCallback()
            cm.requestNetwork(request(NetworkCapabilities.TRANSPORT_CELLULAR), cb)
            cellularRequest = cb
        } else if (!want && current != null) {
            cellularRequest = null
            unregister(current)
        }
    }

    /** Tells the client what changed since it was last told. Called with [lock] held. */
    private fun sync() {
        val c = client ?: return
        val wanted = usable()
        for ((network, r) in reported.entries.toList()) {
            val w = wanted[network]
            // Gone, or the same network with other addresses (a roam) or settings: the old
            // path is dead; lost + available makes the engine build it again.
            if (w == null || w.addresses != r.addresses || w.iface != r.iface) lose(c, network, r)
        }
        for ((network, t) in wanted) {
            if (network in reported) continue
            // A new Network on the same interface (new WiFi network) takes over its path id.
            t.iface.index?.let { idx -> reported.entries.firstOrNull { it.value.pathId == idx }?.let { lose(c, it.key, it.value) } }
            announcing.set(network)
            try {
                val id = c.interfaceAvailable(t.iface)
                reported[network] = Reported(id, t.iface, t.addresses)
                byPath[id] = network
            } catch (_: BraidException) {
                // Logged by Braid; the next change retries.
            } finally {
                announcing.remove()
            }
        }
    }

    private fun lose(c: BraidClient, network: Network, r: Reported) {
        reported.remove(network)
        byPath.remove(r.pathId, network)
        c.interfaceLost(r.pathId)
    }

    private fun readRestrictBackground(): Int =
        if (Build.VERSION.SDK_INT >= 24) cm.restrictBackgroundStatus else ConnectivityManager.RESTRICT_BACKGROUND_STATUS_DISABLED

    /** Runs an OS callback body: nothing may escape to the system's thread (it would kill the app). */
    private inline fun guarded(body: () -> Unit) {
        try {
            body()
        } catch (e: Exception) {
            lastCallbackError = e
        }
    }

    companion object {
        private val WATCHED = intArrayOf(
            NetworkCapabilities.TRANSPORT_WIFI,
            NetworkCapabilities.TRANSPORT_ETHERNET,
            NetworkCapabilities.TRANSPORT_CELLULAR,
        )

        /** The Braid view of a network, or null for a transport Braid does not use. */
        @JvmStatic
        fun describe(caps: NetworkCapabilities, lp: LinkProperties): BraidInterface? {
            val kind = when {
                caps.hasTransport(NetworkCapabilities.TRANSPORT_WIFI) -> InterfaceKind.WIFI
                caps.hasTransport(NetworkCapabilities.TRANSPORT_ETHERNET) -> InterfaceKind.WIRED
                caps.hasTransport(NetworkCapabilities.TRANSPORT_CELLULAR) -> InterfaceKind.CELLULAR
                else -> return null
            }
            val name = lp.interfaceName ?: return null
            // The OS index makes a stable path id; null when the JVM cannot see the interface.
            val index = try {
                java.net.NetworkInterface.getByName(name)?.index?.takeIf { it > 0 }?.toUInt()
            } catch (_: java.net.SocketException) {
                null
            }
            return BraidInterface(kind = kind, name = name, index = index)
        }

        /** The addresses a path can use on a network (link-local ones route nowhere). */
        @JvmStatic
        fun addresses(lp: LinkProperties): Set<InetAddress> =
            lp.linkAddresses.map { it.address }.filter { !it.isLinkLocalAddress }.toSet()

        /**
         * Whether cellular may carry data: the app allows it, and Data Saver is off for the app
         * (or exempts it, or the app opted in with [cellularInDataSaver]).
         */
        @JvmStatic
        fun cellularAllowed(rules: CellularRules, restrictBackgroundStatus: Int, cellularInDataSaver: Boolean): Boolean =
            rules.allowed && (restrictBackgroundStatus != ConnectivityManager.RESTRICT_BACKGROUND_STATUS_ENABLED || cellularInDataSaver)

        /**
         * Of a host's addresses, one a network with [local] addresses can reach: IPv4 if it has
         * IPv4 (or none is known), else IPv6 (an IPv6-only network's DNS64 answer).
         */
        @JvmStatic
        fun pickAddress(candidates: List<InetAddress>, local: Set<InetAddress>): InetAddress? {
            val v4 = local.isEmpty() || local.any { it is Inet4Address }
            val v6 = local.isEmpty() || local.any { it is Inet6Address }
            return candidates.firstOrNull { v4 && it is Inet4Address } ?: candidates.firstOrNull { v6 && it is Inet6Address }
        }

        private fun order(kind: InterfaceKind) = when (kind) {
            InterfaceKind.WIFI -> 0
            InterfaceKind.WIRED -> 1
            InterfaceKind.CELLULAR -> 2
            InterfaceKind.OTHER -> 3
        }
    }
}
