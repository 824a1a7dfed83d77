package dev.pgsnap.junit;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.net.URLEncoder;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.TimeUnit;

/**
 * A client of the store's pgsnap service (docs/protocol.md), one per JVM.
 *
 * The socket is {@code PGSNAP_SOCKET}, else what {@code $PGSNAP_BIN service
 * start} prints (run once, cached; run again when the socket fails, also
 * when it came from PGSNAP_SOCKET: the environment names the same store).  Connections are kept open for reuse:
 * one per thread asking at the same moment, so that parallel tests do not
 * wait for each other's {@code new}.  A service that went away (killed, or
 * leaving because it was idle) is started again and the request retried
 * once.
 */
public final class PgsnapClient {
    private static final PgsnapClient INSTANCE = new PgsnapClient();
    /* How long to keep trying to reach a service that is (re)starting. */
    private static final long CONNECT_DEADLINE_MS = 15_000;

    private final Deque<Conn> idle = new ConcurrentLinkedDeque<>();
    /* PGSNAP_SOCKET first (pgsnap exec sets it); once it fails, or when
     * unset, what `service start` prints.  Guarded by this. */
    private String socket = emptyToNull(System.getenv("PGSNAP_SOCKET"));

    private PgsnapClient() {
    }

    /** The JVM's client. */
    public static PgsnapClient get() {
        return INSTANCE;
    }

    /**
     * Sends {@code verb key=value...} and returns the answer; throws
     * PgsnapException when the service answers {"ok": false}.  Null
     * values are left out.
     */
    public Map<String, Object> call(String verb, Map<String, ?> args) {
        String line = encode(verb, args);
        Conn c = idle.poll();
        Map<String, Object> answer;
        try {
            if (c == null)
                c = open();
        } catch (IOException e) {
            // open() kept trying until its deadline: no second round.
            throw new PgsnapException("pgsnap service: " + verb + " failed: " + e.getMessage(), e);
        }
        try {
            answer = c.request(line);
        } catch (PgsnapException e) {
            c.close();
            throw e;
        } catch (IOException first) {
            c.close();
            c = null;
            // The service went away: the other idle connections were to
            // it too.  Start it again, retry once.
            for (Conn stale; (stale = idle.poll()) != null;)
                stale.close();
            forgetSocket();
            try {
                c = open();
                answer = c.request(line);
            } catch (IOException | PgsnapException again) {
                if (c != null)
                    c.close();
                if (again instanceof PgsnapException)
                    throw (PgsnapException) again;
                again.addSuppressed(first);
                throw new PgsnapException("pgsnap service: " + verb + " failed: " + again.getMessage(), again);
            }
        }
        idle.push(c);
        if (!Boolean.TRUE.equals(answer.get("ok"))) {
            Object msg = answer.get("error");
            Object errno = answer.get("errno");
            throw new PgsnapException("pgsnap service: " + (msg != null ? msg : "refused " + verb),
                    errno != null ? errno.toString() : "EIO");
        }
        return answer;
    }

    /**
     * Sends {@code keep id=ID}: the clone's owner and time limit are
     * dropped, it stays until {@code pgsnap rm}.  Returns the clone.
     */
    public Map<String, Object> keep(String id) {
        return call("keep", args("id", id));
    }

    static String encode(String verb, Map<String, ?> args) {
        StringBuilder b = new StringBuilder(verb);
        for (Map.Entry<String, ?> e : args.entrySet()) {
            if (e.getValue() == null)
                continue;
            b.append(' ').append(e.getKey()).append('=')
                    .append(URLEncoder.encode(e.getValue().toString(), StandardCharsets.UTF_8));
        }
        return b.append('\n').toString();
    }

    private synchronized void forgetSocket() {
        socket = null;
    }

    /* A connection that said hello.  A service that is starting, or one
     * that is leaving as we arrive, is tried again until the deadline. */
    private Conn open() throws IOException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(CONNECT_DEADLINE_MS);
        for (int attempt = 1;; attempt++) {
            Conn c = null;
            try {
                c = new Conn(socketPath());
                Map<String, Object> hello = c.request("pgsnap 1\n");
                if (!Boolean.TRUE.equals(hello.get("ok")) || !Long.valueOf(1).equals(hello.get("protocol")))
                    throw new PgsnapException("pgsnap service at " + c.path + " does not speak protocol 1: "
                            + hello, "EPROTO");
                return c;
            } catch (PgsnapException e) {
                if (c != null)
                    c.close();
                throw e;
            } catch (IOException e) {
                if (c != null)
                    c.close();
                forgetSocket();
                if (System.nanoTime() > deadline)
                    throw new IOException("cannot reach the pgsnap service after " + attempt + " attempts: "
                            + e.getMessage(), e);
                pause(attempt);
            }
        }
    }

    /* A short, growing pause between attempts to reach a (re)starting
     * service: this is a retry with a deadline, not a synchronisation. */
    private static void pause(int attempt) throws IOException {
        try {
            Thread.sleep(Math.min(200, 5L * attempt));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while reaching the pgsnap service", e);
        }
    }

    private static String emptyToNull(String s) {
        return s == null || s.isEmpty() ? null : s;
    }

    private synchronized String socketPath() throws IOException {
        if (socket == null)
            socket = serviceStart();
        return socket;
    }

    /* `pgsnap service start`: starts the store's service unless it runs
     * and prints its socket.  An IOException is worth retrying (the
     * service was leaving); a PgsnapException is not. */
    private static String serviceStart() throws IOException {
        String bin = emptyToNull(System.getenv("PGSNAP_BIN"));
        if (bin == null)
            bin = "pgsnap";
        Process p;
        try {
            p = new ProcessBuilder(bin, "service", "start")
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                    .start();
        } catch (IOException e) {
            throw new PgsnapException("cannot run '" + bin + " service start' (install pgsnap, put it on PATH "
                    + "or set PGSNAP_BIN): " + e.getMessage(), e);
        }
        String out, err;
        int rc;
        try (InputStream o = p.getInputStream(); InputStream e = p.getErrorStream()) {
            // Small outputs: a line each, read in turn without deadlock.
            out = new String(o.readAllBytes(), StandardCharsets.UTF_8).trim();
            err = new String(e.readAllBytes(), StandardCharsets.UTF_8).trim();
            rc = p.waitFor();
        } catch (InterruptedException e) {
            p.destroy();
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while starting the pgsnap service", e);
        }
        if (rc != 0 || out.isEmpty())
            throw new IOException("'" + bin + " service start' failed (exit " + rc + "): " + err);
        return out;
    }

    /** One connection: a line out, a line back. */
    private static final class Conn {
        final String path;
        private final SocketChannel ch;
        private final ByteBuffer in = ByteBuffer.allocate(16384);
        private final ByteArrayOutputStream line = new ByteArrayOutputStream();

        Conn(String path) throws IOException {
            this.path = path;
            ch = SocketChannel.open(StandardProtocolFamily.UNIX);
            try {
                ch.connect(UnixDomainSocketAddress.of(path));
            } catch (IOException | RuntimeException e) {
                ch.close();
                throw new IOException("cannot connect to " + path + ": " + e.getMessage(), e);
            }
            in.flip();
        }

        Map<String, Object> request(String req) throws IOException {
            ByteBuffer out = ByteBuffer.wrap(req.getBytes(StandardCharsets.UTF_8));
            while (out.hasRemaining())
                ch.write(out);
            line.reset();
            for (;;) {
                while (in.hasRemaining()) {
                    byte b = in.get();
                    if (b == '\n') {
                        try {
                            return Json.parseObject(line.toString(StandardCharsets.UTF_8));
                        } catch (IllegalArgumentException e) {
                            throw new PgsnapException(e.getMessage(), "EPROTO");
                        }
                    }
                    line.write(b);
                }
                in.clear();
                int n = ch.read(in);
                in.flip();
                if (n < 0)
                    throw new IOException("the pgsnap service closed the connection");
            }
        }

        void close() {
            try {
                ch.close();
            } catch (IOException e) {
                // nothing to keep: the connection is dropped either way
            }
        }
    }

    /** A map keeping the order of its keys, for {@link #call}. */
    static Map<String, Object> args(Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (int k = 0; k < kv.length; k += 2)
            m.put((String) kv[k], kv[k + 1]);
        return m;
    }
}
