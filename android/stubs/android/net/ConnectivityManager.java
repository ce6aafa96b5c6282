package android.net;

public class ConnectivityManager {
    public static class NetworkCallback {
        public void onAvailable(Network network) {}

        public void onLost(Network network) {}

        public void onCapabilitiesChanged(Network network, NetworkCapabilities networkCapabilities) {}

        public void onLinkPropertiesChanged(Network network, LinkProperties linkProperties) {}
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

    public void requestNetwork(NetworkRequest request, NetworkCallback networkCallback) {}

    public void registerNetworkCallback(NetworkRequest request, NetworkCallback networkCallback) {}

    public void unregisterNetworkCallback(NetworkCallback networkCallback) {}
}
