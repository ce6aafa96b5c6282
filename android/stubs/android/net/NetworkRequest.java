package android.net;

import java.util.HashSet;
import java.util.Set;

public class NetworkRequest {
    /** Stub only: what the request asked for, for the tests to look at. */
    public final Set<Integer> transports;
    public final Set<Integer> capabilities;

    NetworkRequest(Set<Integer> transports, Set<Integer> capabilities) {
        this.transports = transports;
        this.capabilities = capabilities;
    }

    public static class Builder {
        private final Set<Integer> transports = new HashSet<>();
        private final Set<Integer> capabilities = new HashSet<>();

        public Builder addTransportType(int transportType) {
            transports.add(transportType);
            return this;
        }

        public Builder addCapability(int capability) {
            capabilities.add(capability);
            return this;
        }

        public NetworkRequest build() {
            return new NetworkRequest(transports, capabilities);
        }
    }
}
