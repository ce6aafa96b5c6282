// The idiomatic Kotlin layer over the generated bindings (package io.braid.ffi): suspend
// functions, a Flow of events, AutoCloseable handles. The records and enums are the
// generated ones, re-exported here under the same names. The two sealed hierarchies,
// io.braid.ffi.BraidEvent and io.braid.ffi.BraidException, are used from io.braid.ffi
// directly: Kotlin cannot reach nested classes (BraidEvent.PathSwitched) through an alias.
package io.braid

import io.braid.ffi.BraidEvent
import io.braid.ffi.BraidEventStream
import io.braid.ffi.BraidException
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow

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

/**
 * Opens connections that use WiFi and cellular at once. One per app is enough.
 *
 * On Android, pass the [BraidNetworkMonitor]'s [BraidNetworkMonitor.binder]: sockets must be
 * bound to their `Network`, and only `Network.bindSocket` may do that in an app.
 */
class BraidClient(
    config: BraidConfig = BraidConfig(serviceType = ServiceType.HANDOVER),
    binder: SocketBinder? = null,
) : AutoCloseable {
    internal val ffi = io.braid.ffi.BraidClient(config, binder)

    /** Connects to a Braid server (`host:port`). */
    @Throws(BraidException::class)
    suspend fun connect(server: String): BraidConnection = BraidConnection(ffi.connect(server))

    /**
     * Connects to any TCP server [target] (`host:port`) through the Braid gateway [gateway].
     * A gateway that requires a client token (`BraidConfig.token`) it did not get fails this
     * with `BraidException.Unauthorized`.
     */
    @Throws(BraidException::class)
    suspend fun connectVia(gateway: String, target: String): BraidConnection =
        BraidConnection(ffi.connectVia(gateway, target))

    /** An interface came up; returns its path id. [BraidNetworkMonitor] calls this for you. */
    @Throws(BraidException::class)
    fun interfaceAvailable(iface: BraidInterface): UInt = ffi.interfaceAvailable(iface)

    /** The interface behind [pathId] is gone: traffic moves off it at once. */
    fun interfaceLost(pathId: UInt) = ffi.interfaceLost(pathId)

    val interfaces: List<BraidInterfaceEntry> get() = ffi.interfaces()

    /** Frees the client; open connections keep working until they are closed. */
    override fun close() = ffi.close()
}

/** One connection: a byte stream over every usable path. */
class BraidConnection internal constructor(internal val ffi: io.braid.ffi.BraidConnection) : AutoCloseable {
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
        ffi.shutdown()
        ffi.close()
    }

    /** Tears the connection down at once. */
    fun abort() = ffi.abort()

    val stats: BraidStats get() = ffi.stats()
    val paths: List<BraidPath> get() = ffi.paths()
    val remote: String get() = ffi.remote()

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
    override fun close() = ffi.close()
}

/** Where Braid's log lines go: logcat (tag "braid") by default, or a [LogSink]. */
object BraidLog {
    @Throws(BraidException::class)
    fun start(level: LogLevel = LogLevel.INFO, sink: LogSink? = null) = io.braid.ffi.initLogging(level, sink)

    /** Log lines dropped because a sink could not keep up. */
    val dropped: ULong get() = io.braid.ffi.droppedLogLines()
}
