package android.content;

public class IntentFilter {
    private final String action;

    public IntentFilter(String action) {
        this.action = action;
    }

    /** Stub only (the real class has countActions/getAction). */
    public String getAction(int index) {
        return action;
    }
}
