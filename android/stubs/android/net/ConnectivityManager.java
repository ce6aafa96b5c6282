package android.net;

public class ConnectivityManager {
    /** Data Saver is off. */
    public static final int RESTRICT_BACKGROUND_STATUS_DISABLED = 1;
    /** Data Saver is on, but the user exempted this app. */
    public static final int RESTRICT_BACKGROUND_STATUS_WHITELISTED = 2;
    /** Data Saver is on for this app. */
    public static final int RESTRICT_BACKGROUND_STATUS_ENABLED = 3;
    /** Broadcast (to receivers registered at run time only) when Data Saver is toggled. */
    public static final String ACTION_RESTRICT_BACKGROUND_CHANGED =
            "android.net.conn.RESTRICT_BACKGROUND_CHANGED";

    public static class NetworkCallback {
        public void onAvailable(Network network) {}

        public void onLost(Network network) {}

        public void onCapabilitiesChanged(Network network, NetworkCapabilities networkCapabilities) {}

        public void onLinkPropertiesChanged(Network network, LinkProperties linkProperties) {}

        /** API 29+. */
        public void onBlockedStatusChanged(Network network, boolean blocked) {}
    }

    public Network[] getAllNetworks() {
        return new Network[0];
    }

    public NetworkCapabilities getNetworkCapabilities(Network network) {
        return null;
    }

    public LinkProperties getLinkProperties(Network network) {
        return null;
    }

    /** API 24+. */
    public int getRestrictBackgroundStatus() {
        return RESTRICT_BACKGROUND_STATUS_DISABLED;
    }

    public void requestNetwork(NetworkRequest request, NetworkCallback networkCallback) {}

    public void registerNetworkCallback(NetworkRequest request, NetworkCallback networkCallback) {}

    public void unregisterNetworkCallback(NetworkCallback networkCallback) {}
}
