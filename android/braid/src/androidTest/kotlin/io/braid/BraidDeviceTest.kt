// Instrumented tests: the AAR's library on a real Android (emulator), with the real
// ConnectivityManager and Network.bindSocket. Run by .github/workflows/android-emulator.yml,
// which starts a Braid gateway and an echo server on the host; not run by this repository's CI.
package io.braid

import androidx.test.ext.junit.runners.AndroidJUnit4
import androidx.test.platform.app.InstrumentationRegistry
import kotlinx.coroutines.async
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.runBlocking
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertTrue
import org.junit.Assume.assumeTrue
import org.junit.Test
import org.junit.runner.RunWith

@RunWith(AndroidJUnit4::class)
class BraidDeviceTest {
    private val context get() = InstrumentationRegistry.getInstrumentation().targetContext
    private fun arg(name: String): String? = InstrumentationRegistry.getArguments().getString(name)

    @Test
    fun monitorSeesTheEmulatorsNetworkAndClosesCleanly() {
        val client = BraidClient.withNetworkMonitor(context)
        try {
            assertTrue("no interface from ConnectivityManager", client.interfaces.isNotEmpty())
        } finally {
            client.close()
        }
        // Closing twice, and the monitor after the client, must not throw.
        client.close()
        client.networkMonitor?.close()
    }

    @Test
    fun echoThroughTheHostsGateway() = runBlocking {
        val gateway = arg("braidGateway")
        val target = arg("braidEchoTarget")
        assumeTrue("needs -Pandroid.testInstrumentationRunnerArguments.braidGateway/braidEchoTarget", gateway != null && target != null)
        BraidClient.withNetworkMonitor(context).use { client ->
            val conn = client.connectVia(gateway!!, target!!)
            val data = ByteArray(1 shl 20) { (it * 7 + it / 251).toByte() }
            val got = coroutineScope {
                val writer = async {
                    conn.write(data)
                    conn.finish()
                }
                val r = conn.readToEnd()
                writer.await()
                r
            }
            assertArrayEquals(data, got)
            conn.shutdown()
        }
    }
}
