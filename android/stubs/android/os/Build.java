package android.os;

public class Build {
    public static class VERSION {
        /** Stub only: the JVM tests act as a current device. Not a constant, so it is read. */
        public static int SDK_INT = 35;
    }
}
