package android.net;

import java.net.InetAddress;

public class LinkAddress {
    private final InetAddress address;
    private final int prefixLength;

    /** Stub only: the real class has no public constructor. */
    public LinkAddress(InetAddress address, int prefixLength) {
        this.address = address;
        this.prefixLength = prefixLength;
    }

    public InetAddress getAddress() {
        return address;
    }

    public int getPrefixLength() {
        return prefixLength;
    }
}
