// Kotlin tests of the real library on the JVM (JNA), through the Android layer (io.braid).
// Run by `cargo xtask test-foreign`; prints one line per test and "N passed, N failed".
package io.braid.tests

import android.content.Context
import android.net.ConnectivityManager
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
import io.braid.InterfaceKind
import io.braid.LogLevel
import io.braid.LogSink
import io.braid.ServiceType
import io.braid.SocketBinder
import io.braid.SwitchReason
import io.braid.ffi.BraidEvent
import io.braid.ffi.BraidException
import io.braid.testing.BraidTestNetwork
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.async
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import java.io.FileDescriptor
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
            val data = pattern(4 shl 20)
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

class FakeNetwork(val name: String) : Network() {
    val bound = CopyOnWriteArrayList<FileDescriptor>()
    override fun bindSocket(fd: FileDescriptor) {
        bound.add(fd)
    }
    override fun toString() = "FakeNetwork($name)"
}

class FakeConnectivity : ConnectivityManager() {
    val networks = LinkedHashMap<Network, Pair<NetworkCapabilities, LinkProperties>>()
    val requested = ArrayList<Pair<NetworkRequest, NetworkCallback>>()
    val registered = ArrayList<Pair<NetworkRequest, NetworkCallback>>()
    val unregistered = ArrayList<NetworkCallback>()

    override fun getAllNetworks() = networks.keys.toTypedArray()
    override fun getNetworkCapabilities(network: Network) = networks[network]?.first
    override fun getLinkProperties(network: Network) = networks[network]?.second
    override fun requestNetwork(request: NetworkRequest, networkCallback: NetworkCallback) {
        requested.add(request to networkCallback)
    }
    override fun registerNetworkCallback(request: NetworkRequest, networkCallback: NetworkCallback) {
        registered.add(request to networkCallback)
    }
    override fun unregisterNetworkCallback(networkCallback: NetworkCallback) {
        unregistered.add(networkCallback)
    }

    fun add(name: String, transport: Int): FakeNetwork {
        val n = FakeNetwork(name)
        networks[n] = NetworkCapabilities(setOf(transport), setOf(NetworkCapabilities.NET_CAPABILITY_INTERNET)) to LinkProperties(name)
        return n
    }
}

class FakeContext(private val cm: ConnectivityManager) : Context() {
    override fun getSystemService(name: String): Any? = if (name == CONNECTIVITY_SERVICE) cm else null
}

suspend fun networkMonitorFeedsTheClient() {
    val cm = FakeConnectivity()
    val wifi = cm.add("fakewlan0", NetworkCapabilities.TRANSPORT_WIFI)
    BraidNetworkMonitor(FakeContext(cm)).use { monitor ->
        val now = monitor.start()
        check(now.map { it.name to it.kind } == listOf("fakewlan0" to InterfaceKind.WIFI)) { "start: $now" }
        // Cellular is requested (kept up while WiFi is the default), WiFi only watched.
        val cellRequest = cm.requested.singleOrNull()
        check(cellRequest != null && cellRequest.first.transports == setOf(NetworkCapabilities.TRANSPORT_CELLULAR)) {
            "requests: ${cm.requested.map { it.first.transports }}"
        }
        check(cm.registered.any { it.first.transports == setOf(NetworkCapabilities.TRANSPORT_WIFI) }) { "no WiFi callback" }

        BraidClient(BraidConfig(serviceType = ServiceType.HANDOVER, interfaces = now), monitor.binder).use { client ->
            monitor.attach(client)
            check(client.interfaces.size == 1) { "attach duplicated interfaces: ${client.interfaces}" }
            val cell = cm.add("fakermnet0", NetworkCapabilities.TRANSPORT_CELLULAR)
            cellRequest!!.second.onAvailable(cell)
            val kinds = client.interfaces.map { it.`interface`.name to it.`interface`.kind }
            check(kinds == listOf("fakewlan0" to InterfaceKind.WIFI, "fakermnet0" to InterfaceKind.CELLULAR)) { "after cellular: $kinds" }

            // The binder puts a path's socket on its Network.
            val cellEntry = client.interfaces.first { it.`interface`.name == "fakermnet0" }
            monitor.binder.bindSocket(7, BraidPathInfo(cellEntry.pathId, cellEntry.`interface`, "192.0.2.1:443"))
            check(cell.bound.size == 1 && wifi.bound.isEmpty()) { "bound: cell ${cell.bound.size}, wifi ${wifi.bound.size}" }

            cm.registered.first { it.first.transports == setOf(NetworkCapabilities.TRANSPORT_WIFI) }.second.onLost(wifi)
            val left = client.interfaces.map { it.`interface`.name }
            check(left == listOf("fakermnet0")) { "after WiFi lost: $left" }
        }
    }
    check(cm.unregistered.size == 3) { "close unregistered ${cm.unregistered.size} callbacks" }
}

fun main() {
    val tests = listOf(
        "transfer through the gateway over two emulated paths" to ::transferOverTwoPaths,
        "path switch event when WiFi dies" to ::pathSwitchWhenWifiDies,
        "refused and forbidden targets throw typed exceptions" to ::refusedAndForbiddenTargets,
        "log sink receives Braid's log lines" to ::logSinkGetsLines,
        "network monitor feeds the client and binds sockets" to ::networkMonitorFeedsTheClient,
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
