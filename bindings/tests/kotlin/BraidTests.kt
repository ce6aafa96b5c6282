// Kotlin tests of the real library on the JVM (JNA), through the Android layer (io.braid).
// Run by `cargo xtask test-foreign`; prints one line per test and "N passed, N failed".
package io.braid.tests

import android.content.BroadcastReceiver
import android.content.Context
import android.content.Intent
import android.content.IntentFilter
import android.net.ConnectivityManager
import android.net.LinkAddress
import android.net.LinkProperties
import android.net.Network
import android.net.NetworkCapabilities
import android.net.NetworkRequest
import io.braid.BraidClient
import io.braid.BraidConfig
import io.braid.BraidConnection
import io.braid.BraidInterface
import io.braid.BraidLog
import io.braid.BraidNetworkMonitor
import io.braid.BraidPathInfo
import io.braid.BraidProxyConfig
import io.braid.BraidTlsOptions
import io.braid.CellularRules
import io.braid.InterfaceKind
import io.braid.LogLevel
import io.braid.LogSink
import io.braid.ServiceType
import io.braid.SocketBinder
import io.braid.SwitchReason
import io.braid.ffi.BraidEvent
import io.braid.ffi.BraidException
import io.braid.ffi.CallbackException
import io.braid.testing.BraidTestNetwork
import io.braid.testing.panicInNextCall
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withContext
import kotlinx.coroutines.withTimeout
import java.io.FileDescriptor
import java.io.IOException
import java.net.InetAddress
import java.net.UnknownHostException
import java.security.MessageDigest
import java.util.concurrent.CopyOnWriteArrayList
import kotlin.system.exitProcess

class Failure(message: String) : AssertionError(message)

fun check(ok: Boolean, message: () -> String) {
    if (!ok) throw Failure(message())
}

/** A SocketBinder that only records what it was asked to bind. */
class RecordingBinder : SocketBinder {
    val calls = CopyOnWriteArrayList<BraidPathInfo>()
    override fun bindSocket(fd: Int, path: BraidPathInfo) {
        check(fd >= 0) { "bad fd $fd" }
        calls.add(path)
    }
}

fun clientFor(net: BraidTestNetwork, service: ServiceType, binder: SocketBinder? = null): BraidClient {
    // Names are looked up by the default binder: only a foreign binder can take made-up ones.
    fun iface(kind: InterfaceKind, path: String) = BraidInterface(
        kind = kind,
        name = if (binder != null) "emu-$path" else null,
        localAddr = "127.0.0.1",
        via = net.pathVia(path),
    )
    val config = BraidConfig(
        serviceType = service,
        interfaces = listOf(iface(InterfaceKind.WIFI, "wifi"), iface(InterfaceKind.CELLULAR, "cellular")),
        connectTimeoutMs = 5000uL,
    )
    return BraidClient(config, binder)
}

fun pattern(len: Int) = ByteArray(len) { i -> (i * 7 + i / 251).toByte() }

fun sha256(b: ByteArray): String = MessageDigest.getInstance("SHA-256").digest(b).joinToString("") { "%02x".format(it) }

/** Writes [data] while reading the echo; returns what came back. */
suspend fun echo(conn: BraidConnection, data: ByteArray): ByteArray = coroutineScope {
    val writer = async {
        var off = 0
        while (off < data.size) {
            val n = minOf(64 * 1024, data.size - off)
            conn.write(data.copyOfRange(off, off + n))
            off += n
        }
        conn.finish()
    }
    val got = conn.readToEnd()
    writer.await()
    got
}

suspend fun echoRound(conn: BraidConnection, len: Int): Int = coroutineScope {
    val writer = async { conn.write(pattern(len)) }
    var got = 0
    while (got < len) got += (conn.read() ?: throw Failure("echo ended after $got of $len bytes")).size
    writer.await()
    got
}

suspend fun transferOverTwoPaths() {
    BraidTestNetwork().use { net ->
        val binder = RecordingBinder()
        clientFor(net, ServiceType.AGGREGATE, binder).use { client ->
            val conn = client.connectVia(net.gateway(), net.echoTarget())
            // 10 MiB up while the echo brings the same 10 MiB down.
            val data = pattern(10 shl 20)
            val got = echo(conn, data)
            check(got.size == data.size) { "echoed ${got.size} of ${data.size} bytes" }
            check(sha256(got) == sha256(data)) { "echo differs" }
            val stats = conn.stats
            check(stats.mptcp && stats.bytesReceived >= data.size.toULong()) { "stats: $stats" }
            for (p in net.pathNames()) check(net.pathDeliveredBytes(p) > 0uL) { "path $p carried nothing" }
            // Every path socket (and its source-address probe) went through the foreign binder.
            val bound = binder.calls.map { it.`interface`.name }.toSet()
            check(bound == setOf("emu-wifi", "emu-cellular")) { "binder saw $bound" }
            check(net.relayedConnections() == 1uL) { "gateway relayed ${net.relayedConnections()}" }
            conn.shutdown()
        }
    }
}

suspend fun pathSwitchWhenWifiDies() {
    BraidTestNetwork().use { net ->
        clientFor(net, ServiceType.HANDOVER).use { client ->
            val conn = client.connectVia(net.gateway(), net.echoTarget())
            val wifi = client.interfaces.first { it.`interface`.kind == InterfaceKind.WIFI }.pathId
            check(echoRound(conn, 200_000) == 200_000) { "first round" }
            coroutineScope {
                val switched = CompletableDeferred<BraidEvent.PathSwitched>()
                val collector = async {
                    switched.complete(conn.events.first { it is BraidEvent.PathSwitched } as BraidEvent.PathSwitched)
                }
                // Silent death: no OS report, Braid has to notice by itself.
                net.killPath("wifi")
                val traffic = async { echoRound(conn, 500_000) }
                val e = withTimeout(20_000) { switched.await() }
                check(e.fromPath == wifi && e.toPath != wifi) { "switch $e, wifi is $wifi" }
                check(e.reason != SwitchReason.INTERFACE_LOST) { "nobody reported the loss: $e" }
                check(withTimeout(30_000) { traffic.await() } == 500_000) { "transfer after the switch" }
                collector.await()
            }
            conn.shutdown()
        }
    }
}

suspend fun refusedAndForbiddenTargets() {
    BraidTestNetwork().use { net ->
        clientFor(net, ServiceType.HANDOVER).use { client ->
            try {
                client.connectVia(net.gateway(), net.refusedTarget())
                throw Failure("refused target connected")
            } catch (e: BraidException.Refused) {
                check(e.message!!.contains(net.refusedTarget())) { "message: ${e.message}" }
            }
            try {
                client.connectVia(net.gateway(), net.forbiddenTarget())
                throw Failure("forbidden target connected")
            } catch (e: BraidException.NotAllowed) {
                check(e.message!!.contains("does not allow")) { "message: ${e.message}" }
            }
            try {
                client.connectVia("not an address", net.echoTarget())
                throw Failure("bad gateway accepted")
            } catch (e: BraidException.InvalidArgument) {
            }
        }
    }
}

class Lines : LogSink {
    val lines = CopyOnWriteArrayList<String>()
    override fun log(level: LogLevel, target: String, message: String) {
        lines.add("$level $target $message")
    }
}

suspend fun logSinkGetsLines() {
    val sink = Lines()
    BraidLog.start(LogLevel.DEBUG, sink)
    try {
        BraidTestNetwork().use { net ->
            clientFor(net, ServiceType.HANDOVER).use { client ->
                client.connectVia(net.gateway(), net.echoTarget()).shutdown()
            }
        }
        withTimeout(5_000) { while (sink.lines.isEmpty()) kotlinx.coroutines.delay(20) }
    } finally {
        BraidLog.start(LogLevel.OFF, null)
    }
}

// The network monitor, against fake Android classes (android/stubs).

fun ip(s: String): InetAddress = InetAddress.getByName(s)

class FakeNetwork(val name: String) : Network() {
    val bound = CopyOnWriteArrayList<FileDescriptor>()
    @Volatile var failBind: String? = null
    /** What getAllByName answers on this network (its own DNS). */
    val dns = java.util.concurrent.ConcurrentHashMap<String, List<InetAddress>>()
    override fun bindSocket(fd: FileDescriptor) {
        failBind?.let { throw IOException(it) }
        bound.add(fd)
    }
    override fun getAllByName(host: String): Array<InetAddress> =
        dns[host]?.toTypedArray() ?: throw UnknownHostException("$host on $name")
    override fun toString() = "FakeNetwork($name)"
}

class FakeConnectivity : ConnectivityManager() {
    val networks = java.util.concurrent.ConcurrentHashMap<Network, Pair<NetworkCapabilities, LinkProperties>>()
    val requested = CopyOnWriteArrayList<Pair<NetworkRequest, NetworkCallback>>()
    val registered = CopyOnWriteArrayList<Pair<NetworkRequest, NetworkCallback>>()
    val unregistered = CopyOnWriteArrayList<NetworkCallback>()
    @Volatile var restrictStatus = RESTRICT_BACKGROUND_STATUS_DISABLED

    override fun getAllNetworks() = networks.keys.toTypedArray()
    override fun getNetworkCapabilities(network: Network) = networks[network]?.first
    override fun getLinkProperties(network: Network) = networks[network]?.second
    override fun getRestrictBackgroundStatus() = restrictStatus
    override fun requestNetwork(request: NetworkRequest, networkCallback: NetworkCallback) {
        requested.add(request to networkCallback)
    }
    override fun registerNetworkCallback(request: NetworkRequest, networkCallback: NetworkCallback) {
        registered.add(request to networkCallback)
    }
    override fun unregisterNetworkCallback(networkCallback: NetworkCallback) {
        if (networkCallback in unregistered) throw IllegalArgumentException("NetworkCallback was not registered")
        unregistered.add(networkCallback)
    }

    /** Requests for cellular that are still active. */
    val activeCellularRequests get() = requested.filter { it.second !in unregistered }

    fun add(name: String, transport: Int, vararg addrs: String): FakeNetwork {
        val n = FakeNetwork(name)
        val k = networks.size + 10
        setLink(n, transport, *addrs.ifEmpty { arrayOf("10.${(k shr 8) and 255}.${k and 255}.1") })
        return n
    }

    fun setLink(n: Network, transport: Int, vararg addrs: String) {
        networks[n] = caps(transport) to LinkProperties((n as FakeNetwork).name, addrs.map { LinkAddress(ip(it), 24) })
    }

    fun caps(transport: Int) = NetworkCapabilities(setOf(transport), setOf(NetworkCapabilities.NET_CAPABILITY_INTERNET))

    /** Every callback that watches [transport] (registered or requested and still active). */
    fun callbacks(transport: Int) = (registered + requested)
        .filter { it.first.transports == setOf(transport) && it.second !in unregistered }
        .map { it.second }
}

class FakeContext(private val cm: ConnectivityManager) : Context() {
    val receivers = CopyOnWriteArrayList<BroadcastReceiver>()
    override fun getSystemService(name: String): Any? = if (name == CONNECTIVITY_SERVICE) cm else null
    override fun registerReceiver(receiver: BroadcastReceiver, filter: IntentFilter): Intent? {
        check(filter.getAction(0) == ConnectivityManager.ACTION_RESTRICT_BACKGROUND_CHANGED) { "filter ${filter.getAction(0)}" }
        receivers.add(receiver)
        return null
    }
    override fun unregisterReceiver(receiver: BroadcastReceiver) {
        if (!receivers.remove(receiver)) throw IllegalArgumentException("Receiver not registered")
    }
    fun dataSaverToggled() = receivers.forEach { it.onReceive(this, Intent(ConnectivityManager.ACTION_RESTRICT_BACKGROUND_CHANGED)) }
}

fun names(client: BraidClient) = client.interfaces.map { it.`interface`.name }
fun pathOf(client: BraidClient, name: String) = client.interfaces.first { it.`interface`.name == name }.pathId

suspend fun networkMonitorFeedsTheClient() {
    val cm = FakeConnectivity()
    val wifi = cm.add("fakewlan0", NetworkCapabilities.TRANSPORT_WIFI)
    BraidNetworkMonitor(FakeContext(cm)).use { monitor ->
        val now = monitor.start()
        check(now.map { it.name to it.kind } == listOf("fakewlan0" to InterfaceKind.WIFI)) { "start: $now" }
        check(cm.registered.map { it.first.transports.single() }.toSet() == setOf(
            NetworkCapabilities.TRANSPORT_WIFI, NetworkCapabilities.TRANSPORT_ETHERNET, NetworkCapabilities.TRANSPORT_CELLULAR,
        )) { "watched: ${cm.registered.map { it.first.transports }}" }
        // Nothing is open: cellular is watched, not requested.
        check(cm.requested.isEmpty()) { "cellular requested with no connection" }

        BraidClient(BraidConfig(serviceType = ServiceType.HANDOVER, interfaces = now), monitor.binder).use { client ->
            monitor.attach(client)
            check(client.interfaces.size == 1) { "attach duplicated interfaces: ${client.interfaces}" }
            val cell = cm.add("fakermnet0", NetworkCapabilities.TRANSPORT_CELLULAR)
            cm.callbacks(NetworkCapabilities.TRANSPORT_CELLULAR).first().onAvailable(cell)
            val kinds = client.interfaces.map { it.`interface`.name to it.`interface`.kind }
            check(kinds == listOf("fakewlan0" to InterfaceKind.WIFI, "fakermnet0" to InterfaceKind.CELLULAR)) { "after cellular: $kinds" }

            // The binder puts a path's socket on the Network of that path, found by path id.
            val cellEntry = client.interfaces.first { it.`interface`.name == "fakermnet0" }
            monitor.binder.bindSocket(7, BraidPathInfo(cellEntry.pathId, cellEntry.`interface`, "192.0.2.1:443"))
            check(cell.bound.size == 1 && wifi.bound.isEmpty()) { "bound: cell ${cell.bound.size}, wifi ${wifi.bound.size}" }

            cm.callbacks(NetworkCapabilities.TRANSPORT_WIFI).first().onLost(wifi)
            check(names(client) == listOf("fakermnet0")) { "after WiFi lost: ${names(client)}" }
        }
    }
    check(cm.unregistered.size == 3) { "close unregistered ${cm.unregistered.size} callbacks" }
}

/** The sequence that crashed apps: close the client, then a network comes up. */
suspend fun teardownNeverThrowsIntoTheOs() {
    // 1. Client closed, monitor still open: callbacks keep working and reach nobody.
    run {
        val cm = FakeConnectivity()
        cm.add("fakewlan0", NetworkCapabilities.TRANSPORT_WIFI)
        val monitor = BraidNetworkMonitor(FakeContext(cm))
        val client = BraidClient(BraidConfig(serviceType = ServiceType.HANDOVER, interfaces = monitor.start()), monitor.binder)
        monitor.attach(client)
        client.close()
        val cell = cm.add("fakermnet0", NetworkCapabilities.TRANSPORT_CELLULAR)
        for (cb in cm.callbacks(NetworkCapabilities.TRANSPORT_CELLULAR)) {
            cb.onAvailable(cell)
            cb.onLinkPropertiesChanged(cell, cm.getLinkProperties(cell)!!)
            cb.onBlockedStatusChanged(cell, true)
            cb.onLost(cell)
        }
        check(monitor.lastCallbackError == null) { "callback error: ${monitor.lastCallbackError}" }
        monitor.close()
        monitor.close()
    }
    // 2. The Rust object destroyed under an attached monitor (what happened before close
    //    detached monitors): the exception stays inside the callback.
    run {
        val cm = FakeConnectivity()
        cm.add("fakewlan0", NetworkCapabilities.TRANSPORT_WIFI)
        val ctx = FakeContext(cm)
        val client = BraidClient.withNetworkMonitor(ctx)
        client.ffi.close()
        val cell = cm.add("fakermnet0", NetworkCapabilities.TRANSPORT_CELLULAR)
        cm.callbacks(NetworkCapabilities.TRANSPORT_CELLULAR).first().onAvailable(cell)
        val err = client.networkMonitor!!.lastCallbackError
        check(err is IllegalStateException && err.message!!.contains("destroyed")) { "expected the destroyed-object error to be caught, got $err" }
        client.close()
        check(ctx.receivers.isEmpty()) { "Data Saver receiver left registered" }
    }
    // 3. Every order: monitor first, client first, the owned monitor, and late callbacks
    //    after all of it (the OS may deliver one that was already queued).
    for (order in listOf("monitor-first", "client-first", "owned")) {
        val cm = FakeConnectivity()
        cm.add("fakewlan0", NetworkCapabilities.TRANSPORT_WIFI)
        val ctx = FakeContext(cm)
        val (client, monitor) = if (order == "owned") {
            BraidClient.withNetworkMonitor(ctx).let { it to it.networkMonitor!! }
        } else {
            val m = BraidNetworkMonitor(ctx)
            val c = BraidClient(BraidConfig(serviceType = ServiceType.HANDOVER, interfaces = m.start()), m.binder)
            m.attach(c)
            c to m
        }
        val all = (cm.registered + cm.requested).map { it.second }
        if (order == "monitor-first") monitor.close()
        client.close()
        monitor.close()
        check(ctx.receivers.isEmpty()) { "$order: receiver left registered" }
        val late = cm.add("late0", NetworkCapabilities.TRANSPORT_WIFI)
        for (cb in all) {
            cb.onAvailable(late)
            cb.onCapabilitiesChanged(late, cm.getNetworkCapabilities(late)!!)
            cb.onLost(late)
        }
        check(monitor.lastCallbackError == null) { "$order: ${monitor.lastCallbackError}" }
    }
    // 4. Racing: the connectivity thread delivers events while the app closes the client.
    repeat(20) { round ->
        val cm = FakeConnectivity()
        cm.add("fakewlan0", NetworkCapabilities.TRANSPORT_WIFI)
        val client = BraidClient.withNetworkMonitor(FakeContext(cm))
        val monitor = client.networkMonitor!!
        val cbs = cm.callbacks(NetworkCapabilities.TRANSPORT_CELLULAR) + cm.callbacks(NetworkCapabilities.TRANSPORT_WIFI)
        val escaped = java.util.concurrent.atomic.AtomicReference<Throwable?>()
        val osThread = Thread {
            try {
                var i = 0
                while (!Thread.currentThread().isInterrupted && i < 400) {
                    val n = cm.add("racer$i", if (i % 2 == 0) NetworkCapabilities.TRANSPORT_CELLULAR else NetworkCapabilities.TRANSPORT_WIFI)
                    for (cb in cbs) cb.onAvailable(n)
                    for (cb in cbs) cb.onLost(n)
                    i++
                }
            } catch (e: Throwable) {
                escaped.set(e)
            }
        }
        osThread.start()
        Thread.sleep((round % 5).toLong())
        client.close()
        osThread.join(10_000)
        check(!osThread.isAlive) { "round $round: callbacks stuck after close" }
        check(escaped.get() == null) { "round $round: ${escaped.get()} escaped to the OS thread" }
        check(monitor.lastCallbackError == null) { "round $round: ${monitor.lastCallbackError}" }
    }
}

/** A path whose network is unknown or refuses the socket fails; it never lands on the default network. */
suspend fun binderFailuresAreErrors() {
    val cm = FakeConnectivity()
    val wifi = cm.add("fakewlan0", NetworkCapabilities.TRANSPORT_WIFI)
    BraidNetworkMonitor(FakeContext(cm)).use { monitor ->
        val failures = CopyOnWriteArrayList<String>()
        monitor.onBindFailure = { _, reason -> failures.add(reason) }
        monitor.start()
        // Not attached: no path is known, even for an interface name it has seen.
        val unknown = BraidPathInfo(99u, BraidInterface(kind = InterfaceKind.WIFI, name = "fakewlan0"), "192.0.2.1:443")
        try {
            monitor.binder.bindSocket(5, unknown)
            throw Failure("binder accepted a path it cannot place")
        } catch (e: CallbackException.Failed) {
            check(e.reason.contains("no Android network") && e.reason.contains("path 99")) { "reason: ${e.reason}" }
        }
        check(wifi.bound.isEmpty() && failures.size == 1) { "bound ${wifi.bound.size}, failures $failures" }
    }
    // Through the library: every path refuses, so connecting fails with the binder's reason.
    BraidTestNetwork().use { net ->
        val cm2 = FakeConnectivity()
        val w = cm2.add("fakewlan0", NetworkCapabilities.TRANSPORT_WIFI)
        val c = cm2.add("fakermnet0", NetworkCapabilities.TRANSPORT_CELLULAR)
        w.failBind = "EPERM (test)"
        c.failBind = "ENONET (test)"
        BraidClient.withNetworkMonitor(FakeContext(cm2), BraidConfig(serviceType = ServiceType.HANDOVER, connectTimeoutMs = 3000uL)).use { client ->
            try {
                client.connectVia(net.gateway(), net.echoTarget()).close()
                throw Failure("connected although no socket could be bound")
            } catch (e: BraidException) {
                check(e is BraidException.Interface || e is BraidException.NoUsableInterface) { "error type ${e::class.simpleName}: ${e.message}" }
                check(e.message!!.contains("cannot bind a socket to the network of")) { "message: ${e.message}" }
            }
            check(cm2.activeCellularRequests.isEmpty()) { "cellular still requested after the failed connect" }
        }
    }
}

/** WiFi roams to a new address on the same interface: the path is rebuilt, traffic goes on. */
suspend fun roamIsReportedAndThePathRebuilt() {
    BraidTestNetwork().use { net ->
        val cm = FakeConnectivity()
        val wifi = cm.add("fakewlan0", NetworkCapabilities.TRANSPORT_WIFI, "192.0.2.10", "2001:db8::10")
        BraidClient.withNetworkMonitor(FakeContext(cm), BraidConfig(serviceType = ServiceType.HANDOVER, connectTimeoutMs = 5000uL)).use { client ->
            val before = pathOf(client, "fakewlan0")
            val cb = cm.callbacks(NetworkCapabilities.TRANSPORT_WIFI).first()
            // Same addresses again (in another order): nothing to report.
            cm.setLink(wifi, NetworkCapabilities.TRANSPORT_WIFI, "2001:db8::10", "192.0.2.10")
            cb.onLinkPropertiesChanged(wifi, cm.getLinkProperties(wifi)!!)
            check(pathOf(client, "fakewlan0") == before) { "an unchanged network was re-announced" }

            val conn = client.connectVia(net.gateway(), net.echoTarget())
            check(echoRound(conn, 100_000) == 100_000) { "before the roam" }
            coroutineScope {
                val up = CompletableDeferred<BraidEvent.PathUp>()
                val collector = launch {
                    conn.events.collect { e -> if (e is BraidEvent.PathUp && e.pathId != before) up.complete(e) }
                }
                cm.setLink(wifi, NetworkCapabilities.TRANSPORT_WIFI, "192.0.2.77", "2001:db8::10")
                cb.onLinkPropertiesChanged(wifi, cm.getLinkProperties(wifi)!!)
                val after = pathOf(client, "fakewlan0")
                check(after != before) { "roam not reported: path id still $before" }
                val e = withTimeout(10_000) { up.await() }
                check(e.pathId == after && e.kind == InterfaceKind.WIFI) { "path up $e, expected $after" }
                check(echoRound(conn, 300_000) == 300_000) { "after the roam" }
                collector.cancel()
            }
            conn.shutdown()
        }
    }
}

suspend fun dataSaverAndCellularRequests() {
    // The mapping itself.
    val on = ConnectivityManager.RESTRICT_BACKGROUND_STATUS_ENABLED
    val off = ConnectivityManager.RESTRICT_BACKGROUND_STATUS_DISABLED
    val exempt = ConnectivityManager.RESTRICT_BACKGROUND_STATUS_WHITELISTED
    check(BraidNetworkMonitor.cellularAllowed(CellularRules(), off, false)) { "off" }
    check(!BraidNetworkMonitor.cellularAllowed(CellularRules(), on, false)) { "Data Saver on" }
    check(BraidNetworkMonitor.cellularAllowed(CellularRules(), on, true)) { "Data Saver on, app opted in" }
    check(BraidNetworkMonitor.cellularAllowed(CellularRules(), exempt, false)) { "app exempted by the user" }
    check(!BraidNetworkMonitor.cellularAllowed(CellularRules(allowed = false), off, true)) { "app says no" }

    BraidTestNetwork().use { net ->
        val cm = FakeConnectivity()
        cm.restrictStatus = on
        cm.add("fakewlan0", NetworkCapabilities.TRANSPORT_WIFI)
        val cell = cm.add("fakermnet0", NetworkCapabilities.TRANSPORT_CELLULAR)
        val ctx = FakeContext(cm)
        BraidClient.withNetworkMonitor(ctx, BraidConfig(serviceType = ServiceType.HANDOVER, connectTimeoutMs = 5000uL)).use { client ->
            check(names(client) == listOf("fakewlan0")) { "Data Saver on, yet: ${names(client)}" }
            val conn = client.connectVia(net.gateway(), net.echoTarget())
            check(cm.activeCellularRequests.isEmpty()) { "cellular requested under Data Saver" }
            // Data Saver off: cellular is used, and requested while the connection is open.
            cm.restrictStatus = off
            ctx.dataSaverToggled()
            check(names(client) == listOf("fakewlan0", "fakermnet0")) { "after Data Saver off: ${names(client)}" }
            check(cm.activeCellularRequests.size == 1) { "cellular requests: ${cm.activeCellularRequests.size}" }
            // The OS blocks cellular for this app: the path goes.
            cm.callbacks(NetworkCapabilities.TRANSPORT_CELLULAR).first().onBlockedStatusChanged(cell, true)
            check(names(client) == listOf("fakewlan0")) { "blocked cellular still used: ${names(client)}" }
            cm.callbacks(NetworkCapabilities.TRANSPORT_CELLULAR).first().onBlockedStatusChanged(cell, false)
            check(names(client) == listOf("fakewlan0", "fakermnet0")) { "unblocked: ${names(client)}" }
            conn.shutdown()
            check(cm.activeCellularRequests.isEmpty()) { "cellular still requested with no connection open" }
        }
        // The app's rules say no cellular: never requested, never reported.
        val cm2 = FakeConnectivity()
        cm2.add("fakewlan0", NetworkCapabilities.TRANSPORT_WIFI)
        cm2.add("fakermnet0", NetworkCapabilities.TRANSPORT_CELLULAR)
        val cfg = BraidConfig(serviceType = ServiceType.HANDOVER, cellular = CellularRules(allowed = false), connectTimeoutMs = 5000uL)
        BraidClient.withNetworkMonitor(FakeContext(cm2), cfg).use { client ->
            val conn = client.connectVia(net.gateway(), net.echoTarget())
            check(cm2.requested.isEmpty()) { "cellular requested although not allowed" }
            check(names(client) == listOf("fakewlan0")) { "cellular reported although not allowed: ${names(client)}" }
            conn.abort()
        }
    }
}

/** The gateway's name is resolved on each network, in a family that network can reach. */
suspend fun gatewayResolvedPerNetwork() {
    check(BraidNetworkMonitor.pickAddress(listOf(ip("2001:db8::1"), ip("192.0.2.1")), setOf(ip("10.0.0.2"))) == ip("192.0.2.1")) { "v4 network" }
    check(BraidNetworkMonitor.pickAddress(listOf(ip("192.0.2.1"), ip("64:ff9b::c000:201")), setOf(ip("2001:db8::9"))) == ip("64:ff9b::c000:201")) { "IPv6-only network" }
    check(BraidNetworkMonitor.pickAddress(listOf(ip("192.0.2.1")), setOf(ip("2001:db8::9"))) == null) { "unreachable family" }

    BraidTestNetwork().use { net ->
        val port = net.gateway().substringAfterLast(':').toInt()
        val cm = FakeConnectivity()
        val wifi = cm.add("fakewlan0", NetworkCapabilities.TRANSPORT_WIFI, "192.0.2.10")
        val cell = cm.add("fakermnet0", NetworkCapabilities.TRANSPORT_CELLULAR, "2001:db8:c::5")
        wifi.dns["gw.test"] = listOf(ip("127.0.0.1"))
        // IPv6-only cellular: its DNS64 synthesizes the gateway's address.
        cell.dns["gw.test"] = listOf(ip("64:ff9b::7f00:1"))
        BraidClient.withNetworkMonitor(FakeContext(cm), BraidConfig(serviceType = ServiceType.HANDOVER, connectTimeoutMs = 5000uL)).use { client ->
            val conn = client.connectVia("gw.test:$port", net.echoTarget())
            val byName = client.interfaces.associate { it.`interface`.name to it.`interface`.via }
            check(byName["fakewlan0"] == null) { "WiFi reaches the primary address: via ${byName["fakewlan0"]}" }
            check(byName["fakermnet0"] == "[64:ff9b::7f00:1]:$port") { "cellular via ${byName["fakermnet0"]}" }
            check(conn.remote == net.echoTarget()) { "remote ${conn.remote}" }
            check(echoRound(conn, 100_000) == 100_000) { "data through the gateway" }
            conn.shutdown()
        }
        try {
            BraidClient.withNetworkMonitor(FakeContext(cm), BraidConfig(serviceType = ServiceType.HANDOVER, connectTimeoutMs = 3000uL)).use { client ->
                client.connectVia("nowhere.test:$port", net.echoTarget())
            }
            throw Failure("an unresolvable gateway connected")
        } catch (e: BraidException.Resolve) {
        }
    }
}

suspend fun panicsBecomeInternalErrors() {
    BraidTestNetwork().use { net ->
        clientFor(net, ServiceType.HANDOVER).use { client ->
            panicInNextCall("interface_available")
            try {
                client.interfaceAvailable(BraidInterface(kind = InterfaceKind.WIRED, localAddr = "127.0.0.1"))
                throw Failure("no error from a panicking call")
            } catch (e: BraidException.Internal) {
                check(e.message!!.contains("panicked")) { "message: ${e.message}" }
            }
            // The library goes on working.
            client.interfaceAvailable(BraidInterface(kind = InterfaceKind.WIRED, localAddr = "127.0.0.1"))
            val conn = client.connectVia(net.gateway(), net.echoTarget())
            panicInNextCall("finish")
            try {
                conn.finish()
                throw Failure("no error from a panicking finish")
            } catch (e: BraidException.Internal) {
            }
            check(echoRound(conn, 10_000) == 10_000) { "connection after the panic" }
            conn.shutdown()
        }
    }
}

suspend fun cancelledReadLeavesTheConnectionUsable() {
    BraidTestNetwork().use { net ->
        clientFor(net, ServiceType.HANDOVER).use { client ->
            val conn = client.connectVia(net.gateway(), net.echoTarget())
            coroutineScope {
                val pending = async(Dispatchers.Default) { conn.read() }
                delay(200)
                val t0 = System.nanoTime()
                pending.cancel()
                try {
                    pending.await()
                } catch (_: kotlinx.coroutines.CancellationException) {
                }
                val ms = (System.nanoTime() - t0) / 1_000_000
                check(ms < 100) { "cancelling a pending read took $ms ms" }
            }
            check(echoRound(conn, 50_000) == 50_000) { "connection after the cancelled read" }
            conn.shutdown()
        }
    }
}

suspend fun fiftyConnectionsAtOnce() {
    BraidTestNetwork().use { net ->
        clientFor(net, ServiceType.AGGREGATE).use { client ->
            coroutineScope {
                (0 until 50).map { i ->
                    async(Dispatchers.Default) {
                        val conn = client.connectVia(net.gateway(), net.echoTarget())
                        val data = ByteArray(20_000 + i) { (it * 31 + i).toByte() }
                        val got = echo(conn, data)
                        check(sha256(got) == sha256(data)) { "connection $i: echo differs" }
                        conn.shutdown()
                    }
                }.awaitAll()
            }
            check(net.relayedConnections() == 50uL) { "gateway relayed ${net.relayedConnections()}" }
        }
    }
}

suspend fun connectTlsChecksTheCertificate() {
    BraidTestNetwork().use { net ->
        clientFor(net, ServiceType.AGGREGATE).use { client ->
            val good = BraidTlsOptions(useSystemRoots = false, extraRootsPem = listOf(net.testCaPem()), alpn = listOf("http/1.1"))
            client.connectTls(net.gateway(), net.tlsEchoTarget(), "localhost", good).use { conn ->
                check(conn.alpnProtocol == "http/1.1") { "ALPN ${conn.alpnProtocol}" }
                val data = pattern(150_000)
                val back = echo(conn, data)
                check(back.contentEquals(data)) { "TLS echo differs: ${back.size} of ${data.size} bytes" }
                check(conn.stats.bytesReceived > data.size.toULong()) { "stats ${conn.stats}" }
            }
            val untrusted = BraidTlsOptions(useSystemRoots = false, extraRootsDer = listOf(net.wrongCaDer()))
            try {
                client.connectTls(net.gateway(), net.tlsEchoTarget(), "localhost", untrusted).close()
                throw Failure("a certificate from an untrusted CA was accepted")
            } catch (e: BraidException.CertificateRejected) {
                check(e.message!!.contains("UnknownIssuer")) { "message: ${e.message}" }
            }
            // The JVM has no AndroidCAStore and the library no platform verifier on Linux.
            try {
                client.connectTls(net.gateway(), net.tlsEchoTarget(), "localhost").close()
                throw Failure("system roots worked in a build without them")
            } catch (e: BraidException.Unsupported) {
            }
        }
    }
}

/** An SSLContext that trusts only the test network's CA. */
fun trustingTestCa(net: BraidTestNetwork): javax.net.ssl.SSLContext {
    val ca = java.security.cert.CertificateFactory.getInstance("X.509")
        .generateCertificate(net.testCaDer().inputStream())
    val store = java.security.KeyStore.getInstance(java.security.KeyStore.getDefaultType()).apply {
        load(null)
        setCertificateEntry("braid-test-ca", ca)
    }
    val tmf = javax.net.ssl.TrustManagerFactory.getInstance(javax.net.ssl.TrustManagerFactory.getDefaultAlgorithm())
    tmf.init(store)
    return javax.net.ssl.SSLContext.getInstance("TLS").apply { init(null, tmf.trustManagers, null) }
}

/** The JDK's own HTTP client (java.net.http) through BraidProxy (HTTP CONNECT) to HTTPS. */
suspend fun jdkHttpClientThroughTheProxy() {
    BraidTestNetwork().use { net ->
        clientFor(net, ServiceType.HANDOVER).use { client ->
            client.startProxy(net.gateway()).use { proxy ->
                val http = java.net.http.HttpClient.newBuilder()
                    .proxy(proxy.proxySelector())
                    .sslContext(trustingTestCa(net))
                    .connectTimeout(java.time.Duration.ofSeconds(10))
                    .build()
                // "localhost": the proxy hands the name to the gateway, which resolves it.
                val port = net.httpsTarget().substringAfterLast(':')
                fun get(path: String): java.net.http.HttpResponse<ByteArray> {
                    val req = java.net.http.HttpRequest.newBuilder(java.net.URI("https://localhost:$port$path"))
                        .timeout(java.time.Duration.ofSeconds(30)).build()
                    return http.send(req, java.net.http.HttpResponse.BodyHandlers.ofByteArray())
                }
                val greeting = withContext(Dispatchers.IO) { get("/") }
                check(greeting.statusCode() == 200) { "status ${greeting.statusCode()}" }
                check(String(greeting.body()) == net.httpsGreeting()) { "body '${String(greeting.body())}'" }
                val n = 2_000_000
                val big = withContext(Dispatchers.IO) { get("/bytes/$n") }
                val want = ByteArray(n) { i -> (i % 251).toByte() }
                check(big.statusCode() == 200 && big.body().contentEquals(want)) {
                    "status ${big.statusCode()}, ${big.body().size} bytes"
                }
                val st = proxy.stats
                check(st.accepted >= 1uL && st.failed == 0uL) { "proxy stats $st" }
                check(net.relayedConnections() >= 1uL) { "gateway relayed ${net.relayedConnections()}" }
                check(proxy.javaProxy(java.net.Proxy.Type.SOCKS).type() == java.net.Proxy.Type.SOCKS) { "SOCKS proxy" }
                proxy.stop()
                check(!proxy.isRunning) { "running after stop" }
                val refused = try {
                    java.net.Socket("127.0.0.1", proxy.port).close()
                    false
                } catch (e: IOException) {
                    true
                }
                check(refused) { "the port still accepts after stop" }
            }
        }
    }
}

/** SOCKS5 with username/password through java.net.Socket (the JDK's SOCKS client). */
suspend fun socksWithCredentialsFromTheJdk() {
    BraidTestNetwork().use { net ->
        clientFor(net, ServiceType.HANDOVER).use { client ->
            val cfg = BraidProxyConfig(username = "app", password = "s3cret")
            client.startProxy(net.gateway(), cfg).use { proxy ->
                val (host, port) = net.echoTarget().split(':').let { it[0] to it[1].toInt() }
                // The JDK asks the default Authenticator for SOCKS credentials.
                java.net.Authenticator.setDefault(object : java.net.Authenticator() {
                    override fun getPasswordAuthentication() =
                        java.net.PasswordAuthentication("app", "s3cret".toCharArray())
                })
                try {
                    val back = withContext(Dispatchers.IO) {
                        java.net.Socket(proxy.javaProxy(java.net.Proxy.Type.SOCKS)).use { s ->
                            s.connect(java.net.InetSocketAddress.createUnresolved(host, port), 10_000)
                            s.getOutputStream().write("braid".toByteArray())
                            s.shutdownOutput()
                            s.getInputStream().readBytes()
                        }
                    }
                    check(String(back) == "braid") { "echo '${String(back)}'" }
                } finally {
                    java.net.Authenticator.setDefault(null)
                }
                val noAuth = withContext(Dispatchers.IO) {
                    try {
                        java.net.Socket(proxy.javaProxy(java.net.Proxy.Type.SOCKS)).use { s ->
                            s.connect(java.net.InetSocketAddress.createUnresolved(host, port), 10_000)
                        }
                        false
                    } catch (e: IOException) {
                        true
                    }
                }
                check(noAuth) { "connected without credentials" }
                // The JDK may offer username/password and then hang up without credentials, or
                // offer no authentication and be refused: either way the proxy ends that
                // connection as failed, once it has read the hang-up (wait for that).
                var stats = proxy.stats
                val until = System.nanoTime() + 5_000_000_000L
                while (stats.active > 0uL && System.nanoTime() < until) {
                    delay(20)
                    stats = proxy.stats
                }
                check(stats.active == 0uL && stats.failed >= 1uL) { "stats $stats" }
                check(stats.bytesUp == 5uL) { "the refused connection relayed data: $stats" }
            }
        }
    }
}

fun main() {
    val tests = listOf(
        "transfer through the gateway over two emulated paths" to ::transferOverTwoPaths,
        "path switch event when WiFi dies" to ::pathSwitchWhenWifiDies,
        "refused and forbidden targets throw typed exceptions" to ::refusedAndForbiddenTargets,
        "log sink receives Braid's log lines" to ::logSinkGetsLines,
        "network monitor feeds the client and binds sockets" to ::networkMonitorFeedsTheClient,
        "teardown in every order never throws into the OS callback" to ::teardownNeverThrowsIntoTheOs,
        "binder failures surface as errors, never the default network" to ::binderFailuresAreErrors,
        "a roam on the same interface rebuilds the path" to ::roamIsReportedAndThePathRebuilt,
        "Data Saver, blocked status and cellular requests" to ::dataSaverAndCellularRequests,
        "gateway resolved on each network (IPv6-only cellular)" to ::gatewayResolvedPerNetwork,
        "panics in the library become BraidException.Internal" to ::panicsBecomeInternalErrors,
        "cancelling a pending read within 100 ms" to ::cancelledReadLeavesTheConnectionUsable,
        "50 concurrent connections through the gateway" to ::fiftyConnectionsAtOnce,
        "connectTls: echo with the test CA, CertificateRejected without it" to ::connectTlsChecksTheCertificate,
        "java.net.http.HttpClient through BraidProxy to HTTPS" to ::jdkHttpClientThroughTheProxy,
        "SOCKS5 with credentials from java.net.Socket" to ::socksWithCredentialsFromTheJdk,
    )
    var passed = 0
    var failed = 0
    for ((name, test) in tests) {
        val t0 = System.nanoTime()
        try {
            runBlocking { withTimeout(120_000) { test() } }
            passed++
            println("PASS  $name (${(System.nanoTime() - t0) / 1_000_000} ms)")
        } catch (e: Throwable) {
            failed++
            println("FAIL  $name: $e")
            e.printStackTrace()
        }
    }
    println("$passed passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}
