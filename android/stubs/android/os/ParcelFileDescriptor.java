package android.os;

import java.io.Closeable;
import java.io.FileDescriptor;
import java.io.IOException;

public class ParcelFileDescriptor implements Closeable {
    private final int fd;

    private ParcelFileDescriptor(int fd) {
        this.fd = fd;
    }

    /** The real one dup()s the descriptor; the stub only remembers the number. */
    public static ParcelFileDescriptor fromFd(int fd) throws IOException {
        return new ParcelFileDescriptor(fd);
    }

    public FileDescriptor getFileDescriptor() {
        return new FileDescriptor();
    }

    /** Stub only. */
    public int getFd() {
        return fd;
    }

    @Override
    public void close() throws IOException {}
}
