package android.net;

public class LinkProperties {
    private final String interfaceName;

    /** Stub only: the real class has no public constructor taking a name. */
    public LinkProperties(String interfaceName) {
        this.interfaceName = interfaceName;
    }

    public String getInterfaceName() {
        return interfaceName;
    }
}
