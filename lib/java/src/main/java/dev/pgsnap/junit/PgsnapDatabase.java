package dev.pgsnap.junit;

import java.io.PrintWriter;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.SQLFeatureNotSupportedException;
import java.util.Map;
import java.util.Properties;
import java.util.logging.Logger;
import javax.sql.DataSource;

/**
 * A fresh database handed out by pgsnap for one test (a clone, in the
 * service's words), and a {@link DataSource} for it: each
 * {@link #getConnection()} opens a new JDBC connection through
 * {@link DriverManager}, so any JDBC driver for PostgreSQL on the class
 * path serves (no pool: a test's few connections do not need one).  Like
 * DriverManager's, its log writer and login timeout are the JVM's.
 */
public final class PgsnapDatabase implements DataSource {
    /* The service's last answer about it (new, then keep). */
    private volatile Map<String, Object> clone;
    private final String jdbcUrl;

    PgsnapDatabase(Map<String, Object> clone) {
        this.clone = clone;
        this.jdbcUrl = field("jdbc_url");
        if (jdbcUrl == null || field("id") == null)
            throw new PgsnapException("pgsnap service answered a clone without jdbc_url or id: " + clone,
                    "EPROTO");
    }

    /* A later answer about the same clone (keep): same URL, new owner. */
    void update(Map<String, Object> answer) {
        clone = answer;
    }

    private String field(String k) {
        Object v = clone.get(k);
        return v == null ? null : v.toString();
    }

    /** The JDBC URL, user and password included. */
    public String jdbcUrl() {
        return jdbcUrl;
    }

    /** The libpq URL (for psql and other libpq clients). */
    public String url() {
        return field("url");
    }

    /** The clone's id, as {@code pgsnap ls} and {@code pgsnap rm} know it. */
    public String id() {
        return field("id");
    }

    /** The server's log file. */
    public String log() {
        return field("log");
    }

    public String host() {
        return field("host");
    }

    public int port() {
        return ((Number) clone.get("port")).intValue();
    }

    public String user() {
        return field("user");
    }

    public String password() {
        return field("password");
    }

    public String database() {
        return field("database");
    }

    /** Every field of the service's answer (docs/protocol.md, "A clone"). */
    public Map<String, Object> fields() {
        return java.util.Collections.unmodifiableMap(clone);
    }

    @Override
    public String toString() {
        return "pgsnap database " + id() + " (" + jdbcUrl + ")";
    }

    @Override
    public Connection getConnection() throws SQLException {
        return DriverManager.getConnection(jdbcUrl);
    }

    @Override
    public Connection getConnection(String username, String password) throws SQLException {
        // The JDBC URL names our user and password, which would win over
        // properties: ask with the URL without them.
        int q = jdbcUrl.indexOf('?');
        Properties p = new Properties();
        if (username != null)
            p.setProperty("user", username);
        if (password != null)
            p.setProperty("password", password);
        return DriverManager.getConnection(q < 0 ? jdbcUrl : jdbcUrl.substring(0, q), p);
    }

    @Override
    public PrintWriter getLogWriter() {
        return DriverManager.getLogWriter();
    }

    @Override
    public void setLogWriter(PrintWriter out) {
        DriverManager.setLogWriter(out);
    }

    @Override
    public void setLoginTimeout(int seconds) {
        DriverManager.setLoginTimeout(seconds);
    }

    @Override
    public int getLoginTimeout() {
        return DriverManager.getLoginTimeout();
    }

    @Override
    public Logger getParentLogger() throws SQLFeatureNotSupportedException {
        throw new SQLFeatureNotSupportedException("PgsnapDatabase does not log through java.util.logging");
    }

    @Override
    public <T> T unwrap(Class<T> iface) throws SQLException {
        if (iface.isInstance(this))
            return iface.cast(this);
        throw new SQLException("PgsnapDatabase is not a " + iface.getName());
    }

    @Override
    public boolean isWrapperFor(Class<?> iface) {
        return iface.isInstance(this);
    }
}
