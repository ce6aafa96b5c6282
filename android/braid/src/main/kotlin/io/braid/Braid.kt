// The idiomatic Kotlin layer over the generated bindings (package io.braid.ffi): suspend
// functions, a Flow of events, AutoCloseable handles. The records and enums are the
// generated ones, re-exported here under the same names. The two sealed hierarchies,
// io.braid.ffi.BraidEvent and io.braid.ffi.BraidException, are used from io.braid.ffi
// directly: Kotlin cannot reach nested classes (BraidEvent.PathSwitched) through an alias.
package io.braid

import io.braid.ffi.BraidEvent
import io.braid.ffi.BraidEventStream
import io.braid.ffi.BraidException
import android.content.Context
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.withContext
import java.net.Inet4Address
import java.net.InetAddress
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.atomic.AtomicBoolean
import java.util.concurrent.atomic.AtomicInteger

typealias BraidConfig = io.braid.ffi.BraidConfig
typealias BraidInterface = io.braid.ffi.BraidInterface
typealias BraidInterfaceEntry = io.braid.ffi.BraidInterfaceEntry
typealias BraidPathInfo = io.braid.ffi.BraidPathInfo
typealias BraidStats = io.braid.ffi.BraidStats
typealias BraidPath = io.braid.ffi.BraidPath
typealias CellularRules = io.braid.ffi.CellularRules
typealias ServiceType = io.braid.ffi.ServiceType
typealias InterfaceKind = io.braid.ffi.InterfaceKind
typealias SwitchReason = io.braid.ffi.SwitchReason
typealias CloseReason = io.braid.ffi.CloseReason
typealias LogLevel = io.braid.ffi.LogLevel
typealias LogSink = io.braid.ffi.LogSink
typealias SocketBinder = io.braid.ffi.SocketBinder
typealias BraidTlsOptions = io.braid.ffi.BraidTlsOptions
typealias BraidProxyConfig = io.braid.ffi.BraidProxyConfig
typealias BraidProxyStats = io.braid.ffi.BraidProxyStats

/**
 * Opens connections that use WiFi and cellular at once. One per app is enough.
 *
 * On Android, use [withNetworkMonitor]: sockets must be bound to their `Network` (only
 * `Network.bindSocket` may do that in an app), and interfaces come and go.
 */
class BraidClient(
    config: BraidConfig = BraidConfig(serviceType = ServiceType.HANDOVER),
    binder: SocketBinder? = null,
) : AutoCloseable {
    internal val ffi = io.braid.ffi.BraidClient(config, binder)
    private val monitors = CopyOnWriteArrayList<BraidNetworkMonitor>()
    /** Made by [withNetworkMonitor]: closed with the client. */
    private var ownMonitor: BraidNetworkMonitor? = null
    private val open = AtomicInteger()
    private val closed = AtomicBoolean()

    companion object {
        /**
         * A client whose interfaces come from a [BraidNetworkMonitor] that it owns: sockets
         * bound through each path's `Network`, interfaces (and roams) reported as they happen,
         * cellular requested only while a connection is open, and the monitor closed with the
         * client. `config.interfaces` must be empty: the monitor supplies them.
         */
        @JvmStatic
        @JvmOverloads
        @Throws(BraidException::class)
        fun withNetworkMonitor(
            context: Context,
            config: BraidConfig = BraidConfig(serviceType = ServiceType.HANDOVER),
            cellularInDataSaver: Boolean = false,
        ): BraidClient {
            if (config.interfaces.isNotEmpty()) {
                throw BraidException.InvalidArgument("withNetworkMonitor takes its interfaces from the monitor: leave config.interfaces empty")
            }
            val monitor = BraidNetworkMonitor(context, config.cellular, cellularInDataSaver)
            try {
                val client = BraidClient(config.copy(interfaces = monitor.start()), monitor.binder)
                client.ownMonitor = monitor
                monitor.attach(client)
                return client
            } catch (e: Throwable) {
                monitor.close()
                throw e
            }
        }
    }

    /** The monitor this client owns ([withNetworkMonitor]), if any. */
    val networkMonitor: BraidNetworkMonitor? get() = ownMonitor

    internal val openConnections: Int get() = open.get()

    internal fun monitorAttached(m: BraidNetworkMonitor) {
        if (!monitors.contains(m)) monitors.add(m)
    }

    internal fun monitorDetached(m: BraidNetworkMonitor) {
        monitors.remove(m)
    }

    private fun connectionsChanged(delta: Int) {
        val n = open.addAndGet(delta)
        for (m in monitors) m.connectionsChanged(this, n)
    }

    /** Counts the connection as open from the start of the attempt (cellular comes up for it). */
    private suspend fun opened(connect: suspend () -> io.braid.ffi.BraidConnection): BraidConnection {
        connectionsChanged(+1)
        val c = try {
            connect()
        } catch (e: Throwable) {
            connectionsChanged(-1)
            throw e
        }
        return BraidConnection(c) { connectionsChanged(-1) }
    }

    /** Connects to a Braid server (`host:port`). */
    @Throws(BraidException::class)
    suspend fun connect(server: String): BraidConnection = opened { ffi.connect(server) }

    /**
     * Connects to any TCP server [target] (`host:port`) through the Braid gateway [gateway].
     * With a network monitor, a gateway host name is resolved on each network (its own DNS),
     * and a network that cannot reach the chosen address's family (IPv6-only cellular) sends
     * to the address it resolved instead. A gateway that requires a client token
     * (`BraidConfig.token`) it did not get fails this with `BraidException.Unauthorized`.
     */
    @Throws(BraidException::class)
    suspend fun connectVia(gateway: String, target: String): BraidConnection = opened {
        ffi.connectVia(resolveGateway(gateway), target)
    }

    /**
     * Connects to [target] (`host:port`) through the Braid gateway [gateway] and runs a TLS
     * handshake (rustls) that checks the server's certificate for [serverName]; the
     * connection then carries plaintext. A certificate that fails the check throws
     * `BraidException.CertificateRejected`. [options] default: the system's trust store
     * (on Android, the system CAs of `AndroidCAStore`); for a private CA pass
     * `BraidTlsOptions(useSystemRoots = false, extraRootsPem = listOf(pem))`.
     */
    @Throws(BraidException::class)
    suspend fun connectTls(
        gateway: String,
        target: String,
        serverName: String,
        options: BraidTlsOptions = BraidTlsOptions(),
    ): BraidConnection = opened {
        ffi.connectTls(resolveGateway(gateway), target, serverName, withAndroidSystemRoots(options))
    }

    /**
     * Starts a local proxy (SOCKS5 and HTTP CONNECT on one port of 127.0.0.1) that turns
     * every connection of the app's own HTTP stack into a Braid connection through
     * [gateway], with this client's interfaces, service type, cellular rules and token:
     * `OkHttpClient.Builder().proxy(braidProxy.javaProxy()).build()`. While it runs it
     * counts as an open connection (a network monitor keeps cellular up for it).
     */
    @Throws(BraidException::class)
    suspend fun startProxy(gateway: String, config: BraidProxyConfig = BraidProxyConfig()): BraidProxy {
        connectionsChanged(+1)
        val p = try {
            ffi.startProxy(resolveGateway(gateway), config)
        } catch (e: Throwable) {
            connectionsChanged(-1)
            throw e
        }
        return BraidProxy(p) { connectionsChanged(-1) }
    }

    private suspend fun resolveGateway(gateway: String): String {
        val monitor = monitors.firstOrNull() ?: return gateway
        val (host, port) = splitHostPort(gateway) ?: return gateway
        if (isIpLiteral(host)) return gateway
        val (networks, plan) = withContext(Dispatchers.IO) { monitor.resolveOnEachNetwork(host) }
        // No network yet: let the library resolve it (and report what it finds).
        if (networks == 0) return gateway
        val primary = plan.firstOrNull()?.second
            ?: throw BraidException.Resolve("cannot resolve gateway '$gateway' on any of the $networks networks in use")
        for ((network, addr) in plan) {
            val differs = (addr is Inet4Address) != (primary is Inet4Address)
            monitor.setVia(network, if (differs) socketAddress(addr, port) else null)
        }
        return socketAddress(primary, port)
    }

    /** An interface came up; returns its path id. [BraidNetworkMonitor] calls this for you. */
    @Throws(BraidException::class)
    fun interfaceAvailable(iface: BraidInterface): UInt = ffi.interfaceAvailable(iface)

    /** The interface behind [pathId] is gone: traffic moves off it at once. */
    fun interfaceLost(pathId: UInt) = ffi.interfaceLost(pathId)

    val interfaces: List<BraidInterfaceEntry> get() = ffi.interfaces()

    /**
     * Frees the client; open connections keep working until they are closed. Monitors stop
     * calling it before it is freed, and its own monitor is closed. Idempotent.
     */
    override fun close() {
        if (!closed.compareAndSet(false, true)) return
        for (m in monitors) m.detach(this)
        monitors.clear()
        ownMonitor?.close()
        ffi.close()
    }
}

/**
 * The library has no platform verifier on Android: the system trust store is passed to it
 * as roots instead (the "system:" entries of `AndroidCAStore`, not user-installed CAs, as
 * apps targeting API 24+ trust by default). Elsewhere (the JVM) [options] go through as is.
 */
internal suspend fun withAndroidSystemRoots(options: BraidTlsOptions): BraidTlsOptions {
    if (!options.useSystemRoots || options.extraRootsPem.isNotEmpty() || options.extraRootsDer.isNotEmpty()) {
        return options
    }
    val roots = withContext(Dispatchers.IO) { androidSystemRoots() } ?: return options
    return options.copy(useSystemRoots = false, extraRootsDer = roots)
}

private fun androidSystemRoots(): List<ByteArray>? {
    val store = try {
        java.security.KeyStore.getInstance("AndroidCAStore").apply { load(null) }
    } catch (e: java.security.GeneralSecurityException) {
        return null
    } catch (e: java.io.IOException) {
        return null
    }
    return store.aliases().toList()
        .filter { it.startsWith("system:") }
        .mapNotNull { store.getCertificate(it)?.encoded }
        .takeIf { it.isNotEmpty() }
}

internal fun splitHostPort(s: String): Pair<String, Int>? {
    val t = s.trim()
    val i = t.lastIndexOf(':')
    if (i <= 0) return null
    val host = t.substring(0, i).removePrefix("[").removeSuffix("]")
    val port = t.substring(i + 1).toIntOrNull()?.takeIf { it in 1..65535 } ?: return null
    return host to port
}

internal fun isIpLiteral(host: String) =
    host.contains(':') || host.split('.').let { p -> p.size == 4 && p.all { it.toIntOrNull() in 0..255 } }

internal fun socketAddress(a: InetAddress, port: Int) =
    if (a is Inet4Address) "${a.hostAddress}:$port" else "[${a.hostAddress}]:$port"

/** One connection: a byte stream over every usable path. */
class BraidConnection internal constructor(
    internal val ffi: io.braid.ffi.BraidConnection,
    private val onRelease: () -> Unit = {},
) : AutoCloseable {
    private val released = AtomicBoolean()

    private fun release() {
        if (released.compareAndSet(false, true)) onRelease()
    }

    /** Up to [maxBytes] bytes, or null once the peer finished sending. */
    @Throws(BraidException::class)
    suspend fun read(maxBytes: Int = 64 * 1024): ByteArray? {
        val b = ffi.read(maxBytes.coerceIn(1, 1 shl 20).toUInt())
        return if (b.isEmpty()) null else b
    }

    /** Reads until the peer finishes sending. */
    @Throws(BraidException::class)
    suspend fun readToEnd(): ByteArray {
        val out = java.io.ByteArrayOutputStream()
        while (true) out.write(read() ?: return out.toByteArray())
    }

    /** Writes all of [data] (returns when the connection has taken it). */
    @Throws(BraidException::class)
    suspend fun write(data: ByteArray) = ffi.write(data)

    /** No more writes: the peer reads end of stream. Reading goes on. */
    @Throws(BraidException::class)
    fun finish() = ffi.finish()

    /** Closes gracefully (buffered data is still delivered) and frees the connection. */
    suspend fun shutdown() {
        try {
            ffi.shutdown()
        } finally {
            release()
            ffi.close()
        }
    }

    /** Tears the connection down at once. */
    fun abort() {
        release()
        ffi.abort()
    }

    val stats: BraidStats get() = ffi.stats()
    val paths: List<BraidPath> get() = ffi.paths()
    val remote: String get() = ffi.remote()

    /** The protocol the TLS server chose by ALPN ("h2", ...); null for a plain connection. */
    val alpnProtocol: String? get() = ffi.alpnProtocol()

    /** Changes how the connection uses its paths, live; the client's other settings stay. */
    @Throws(BraidException::class)
    fun setServiceType(serviceType: ServiceType) = ffi.setServiceType(serviceType)

    /**
     * Path and state changes, from the first collection on (the first collector also gets
     * what happened since `connect` returned). Completes after [BraidEvent.Closed]; cancelling
     * the collector stops the stream.
     */
    val events: Flow<BraidEvent> get() = flow {
        val stream: BraidEventStream = ffi.subscribe()
        try {
            while (true) emit(stream.next() ?: break)
        } finally {
            stream.cancel()
            stream.close()
        }
    }

    /** Frees the connection; it closes gracefully in the background. */
    override fun close() {
        release()
        ffi.close()
    }
}

/**
 * A local proxy from [BraidClient.startProxy]. Point an HTTP client at it:
 * `OkHttpClient.Builder().proxy(proxy.javaProxy()).build()`, or
 * `HttpClient.newBuilder().proxy(proxy.proxySelector())` (java.net.http speaks HTTP CONNECT
 * only). With credentials in the config, the client must send them (OkHttp:
 * `proxyAuthenticator`; SOCKS: `java.net.Authenticator`). Closing it stops it.
 */
class BraidProxy internal constructor(
    internal val ffi: io.braid.ffi.BraidProxy,
    private val onRelease: () -> Unit = {},
) : AutoCloseable {
    private val released = AtomicBoolean()

    /** The port on 127.0.0.1. */
    val port: Int get() = ffi.port().toInt()

    /** `127.0.0.1:port`. */
    val address: String get() = ffi.address()

    val stats: BraidProxyStats get() = ffi.stats()

    val isRunning: Boolean get() = ffi.isRunning()

    /** The proxy as a `java.net.Proxy`: [type] HTTP is CONNECT (the default), SOCKS is SOCKS5. */
    @JvmOverloads
    fun javaProxy(type: java.net.Proxy.Type = java.net.Proxy.Type.HTTP): java.net.Proxy {
        require(type != java.net.Proxy.Type.DIRECT) { "a Braid proxy is HTTP or SOCKS" }
        return java.net.Proxy(type, java.net.InetSocketAddress(InetAddress.getLoopbackAddress(), port))
    }

    /** A `ProxySelector` that sends every URI through [javaProxy] of [type]. */
    @JvmOverloads
    fun proxySelector(type: java.net.Proxy.Type = java.net.Proxy.Type.HTTP): java.net.ProxySelector {
        val proxy = javaProxy(type)
        return object : java.net.ProxySelector() {
            override fun select(uri: java.net.URI?): List<java.net.Proxy> = listOf(proxy)
            override fun connectFailed(uri: java.net.URI?, sa: java.net.SocketAddress?, ioe: java.io.IOException?) {}
        }
    }

    /** Stops accepting; connections already open go on. Idempotent. */
    fun stop() {
        ffi.stop()
        if (released.compareAndSet(false, true)) onRelease()
    }

    /** Stops it and frees it. */
    override fun close() {
        stop()
        ffi.close()
    }
}

/** Where Braid's log lines go: logcat (tag "braid") by default, or a [LogSink]. */
object BraidLog {
    @Throws(BraidException::class)
    fun start(level: LogLevel = LogLevel.INFO, sink: LogSink? = null) = io.braid.ffi.initLogging(level, sink)

    /** Log lines dropped because a sink could not keep up. */
    val dropped: ULong get() = io.braid.ffi.droppedLogLines()
}
