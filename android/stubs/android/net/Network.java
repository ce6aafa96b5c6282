package android.net;

import java.io.FileDescriptor;
import java.io.IOException;
import java.net.InetAddress;
import java.net.UnknownHostException;

public class Network {
    public void bindSocket(FileDescriptor fd) throws IOException {
        throw new IOException("stub");
    }

    /** The real one asks this network's DNS servers. */
    public InetAddress[] getAllByName(String host) throws UnknownHostException {
        throw new UnknownHostException("stub");
    }

    public long getNetworkHandle() {
        return 0;
    }
}
