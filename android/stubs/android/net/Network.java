package android.net;

import java.io.FileDescriptor;
import java.io.IOException;

public class Network {
    public void bindSocket(FileDescriptor fd) throws IOException {
        throw new IOException("stub");
    }

    public long getNetworkHandle() {
        return 0;
    }
}
