package android.net;

import java.util.Set;

public class NetworkCapabilities {
    public static final int TRANSPORT_CELLULAR = 0;
    public static final int TRANSPORT_WIFI = 1;
    public static final int TRANSPORT_ETHERNET = 3;
    public static final int NET_CAPABILITY_NOT_METERED = 11;
    public static final int NET_CAPABILITY_INTERNET = 12;
    public static final int NET_CAPABILITY_NOT_RESTRICTED = 13;

    private final Set<Integer> transports;
    private final Set<Integer> capabilities;

    /** Stub only. */
    public NetworkCapabilities(Set<Integer> transports, Set<Integer> capabilities) {
        this.transports = transports;
        this.capabilities = capabilities;
    }

    public boolean hasTransport(int transportType) {
        return transports.contains(transportType);
    }

    public boolean hasCapability(int capability) {
        return capabilities.contains(capability);
    }
}
