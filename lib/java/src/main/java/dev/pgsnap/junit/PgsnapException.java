package dev.pgsnap.junit;

/**
 * The pgsnap service refused a request, or could not be reached.
 * {@link #errno()} is the service's symbolic errno ("ENOENT", ...), or
 * null when the service was not reached at all.
 */
public class PgsnapException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final String errno;

    PgsnapException(String message, String errno) {
        super(message);
        this.errno = errno;
    }

    PgsnapException(String message, Throwable cause) {
        super(message, cause);
        this.errno = null;
    }

    /** The symbolic errno the service answered with, or null. */
    public String errno() {
        return errno;
    }
}
