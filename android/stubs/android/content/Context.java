package android.content;

public abstract class Context {
    public static final String CONNECTIVITY_SERVICE = "connectivity";

    public abstract Object getSystemService(String name);

    public abstract Intent registerReceiver(BroadcastReceiver receiver, IntentFilter filter);

    public abstract void unregisterReceiver(BroadcastReceiver receiver);
}
