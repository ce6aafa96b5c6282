// Interface events from ConnectivityManager, and socket binding with Network.bindSocket.
package io.braid

import android.content.Context
import android.net.ConnectivityManager
import android.net.LinkProperties
import android.net.Network
import android.net.NetworkCapabilities
import android.net.NetworkRequest
import android.os.ParcelFileDescriptor
import io.braid.ffi.BraidException
import io.braid.ffi.CallbackException
import java.io.IOException
import java.util.concurrent.ConcurrentHashMap

/**
 * Watches WiFi, cellular and Ethernet and tells a [BraidClient] when one comes or goes.
 *
 * Cellular is *requested* (`requestNetwork`), not just watched: Android tears mobile data
 * down once WiFi is validated, and Braid needs it up as a second path. That costs battery
 * and data; use [CellularRules] in the config to bound it.
 *
 * Needs ACCESS_NETWORK_STATE and CHANGE_NETWORK_STATE (declared in this library's manifest).
 *
 * ```
 * val monitor = BraidNetworkMonitor(context)
 * val config = BraidConfig(serviceType = ServiceType.HANDOVER, interfaces = monitor.start())
 * val client = BraidClient(config, monitor.binder)
 * monitor.attach(client)
 * ```
 */
class BraidNetworkMonitor(context: Context) : AutoCloseable {
    private val cm = context.getSystemService(Context.CONNECTIVITY_SERVICE) as ConnectivityManager
    private val lock = Any()
    /** Networks that are up, with the interface they became. */
    private val up = LinkedHashMap<Network, BraidInterface>()
    /** What the client was told: interface name -> path id. */
    private val reported = HashMap<String, UInt>()
    private var client: BraidClient? = null
    private val callbacks = ArrayList<ConnectivityManager.NetworkCallback>()
    private val byName = ConcurrentHashMap<String, Network>()

    /** Binds each Braid socket to the `Network` of its interface (by interface name). */
    val binder: SocketBinder = object : SocketBinder {
        override fun bindSocket(fd: Int, path: BraidPathInfo) {
            // No name, or a network we do not know: leave the socket on the default network.
            val network = path.`interface`.name?.let { byName[it] } ?: return
            try {
                ParcelFileDescriptor.fromFd(fd).use { network.bindSocket(it.fileDescriptor) }
            } catch (e: IOException) {
                throw CallbackException.Failed("cannot bind to ${path.`interface`.name}: ${e.message}")
            }
        }
    }

    /**
     * Starts watching; returns the interfaces usable now, preferred first (WiFi, Ethernet,
     * cellular), for the client's config. Interfaces that come later reach the client once
     * it is [attach]ed.
     */
    fun start(): List<BraidInterface> {
        synchronized(lock) {
            if (callbacks.isEmpty()) {
                for (network in cm.allNetworks) {
                    val caps = cm.getNetworkCapabilities(network) ?: continue
                    val lp = cm.getLinkProperties(network) ?: continue
                    if (caps.hasCapability(NetworkCapabilities.NET_CAPABILITY_INTERNET)) {
                        describe(caps, lp)?.let { remember(network, it) }
                    }
                }
                watch(NetworkCapabilities.TRANSPORT_WIFI, request = false)
                watch(NetworkCapabilities.TRANSPORT_ETHERNET, request = false)
                watch(NetworkCapabilities.TRANSPORT_CELLULAR, request = true)
            }
            return up.values.sortedBy { order(it.kind) }
        }
    }

    /** From now on, [client] hears about every interface that comes or goes. */
    fun attach(client: BraidClient) {
        synchronized(lock) {
            this.client = client
            // Interfaces the client was built with are already known to it.
            for (entry in client.interfaces) {
                entry.`interface`.name?.let { reported[it] = entry.pathId }
            }
            sync()
        }
    }

    /** Stops watching and releases the cellular request. */
    override fun close() {
        synchronized(lock) {
            for (cb in callbacks) {
                try {
                    cm.unregisterNetworkCallback(cb)
                } catch (_: IllegalArgumentException) {
                    // Already unregistered.
                }
            }
            callbacks.clear()
            client = null
        }
    }

    private fun watch(transport: Int, request: Boolean) {
        val req = NetworkRequest.Builder()
            .addCapability(NetworkCapabilities.NET_CAPABILITY_INTERNET)
            .addTransportType(transport)
            .build()
        val cb = object : ConnectivityManager.NetworkCallback() {
            override fun onAvailable(network: Network) {
                // API 23-25 do not follow onAvailable with the properties: ask for them.
                val caps = cm.getNetworkCapabilities(network) ?: return
                val lp = cm.getLinkProperties(network) ?: return
                changed(network, caps, lp)
            }

            override fun onLinkPropertiesChanged(network: Network, linkProperties: LinkProperties) {
                val caps = cm.getNetworkCapabilities(network) ?: return
                changed(network, caps, linkProperties)
            }

            override fun onLost(network: Network) {
                synchronized(lock) {
                    up.remove(network)?.name?.let { byName.remove(it, network) }
                    sync()
                }
            }
        }
        if (request) cm.requestNetwork(req, cb) else cm.registerNetworkCallback(req, cb)
        callbacks.add(cb)
    }

    private fun changed(network: Network, caps: NetworkCapabilities, lp: LinkProperties) {
        val iface = describe(caps, lp) ?: return
        synchronized(lock) {
            val old = up[network]
            if (old != null && old.name != iface.name) old.name?.let { byName.remove(it, network) }
            remember(network, iface)
            sync()
        }
    }

    private fun remember(network: Network, iface: BraidInterface) {
        up[network] = iface
        iface.name?.let { byName[it] = network }
    }

    /** Tells the client what changed since it was last told. Called with [lock] held. */
    private fun sync() {
        val c = client ?: return
        val names = up.values.mapNotNull { it.name }.toSet()
        for ((name, id) in reported.entries.toList()) {
            if (name !in names) {
                c.interfaceLost(id)
                reported.remove(name)
            }
        }
        for (iface in up.values.sortedBy { order(it.kind) }) {
            val name = iface.name ?: continue
            if (name in reported) continue
            try {
                reported[name] = c.interfaceAvailable(iface)
            } catch (e: BraidException) {
                // Logged by Braid; the next change retries.
            }
        }
    }

    companion object {
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

        private fun order(kind: InterfaceKind) = when (kind) {
            InterfaceKind.WIFI -> 0
            InterfaceKind.WIRED -> 1
            InterfaceKind.CELLULAR -> 2
            InterfaceKind.OTHER -> 3
        }
    }
}
