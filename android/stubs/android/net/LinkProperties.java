package android.net;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

public class LinkProperties {
    private final String interfaceName;
    private final List<LinkAddress> linkAddresses;

    /** Stub only: the real class has no public constructor taking a name. */
    public LinkProperties(String interfaceName) {
        this(interfaceName, Collections.emptyList());
    }

    /** Stub only. */
    public LinkProperties(String interfaceName, List<LinkAddress> linkAddresses) {
        this.interfaceName = interfaceName;
        this.linkAddresses = new ArrayList<>(linkAddresses);
    }

    public String getInterfaceName() {
        return interfaceName;
    }

    public List<LinkAddress> getLinkAddresses() {
        return Collections.unmodifiableList(linkAddresses);
    }
}
