// DatabaseTest.java - JUnit 4 and JDBC: a fresh server (TCP) per test.
import static org.junit.Assert.assertEquals;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import org.junit.After;
import org.junit.Before;
import org.junit.Test;

public class DatabaseTest {
    private String jdbcUrl;
    private Connection conn;

    private static String pgsnap(String... args) throws Exception {
        String[] cmd = new String[args.length + 1];
        cmd[0] = "pgsnap";
        System.arraycopy(args, 0, cmd, 1, args.length);
        Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT).start();
        String out;
        try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream()))) {
            out = r.readLine();
        }
        if (p.waitFor() != 0)
            throw new IllegalStateException("pgsnap " + String.join(" ", args) + " failed");
        return out;
    }

    @Before
    public void startServer() throws Exception {
        jdbcUrl = pgsnap("new", "--jdbc");          // TCP: JDBC has no Unix sockets
        conn = DriverManager.getConnection(jdbcUrl); // user and password are in the URL
    }

    @After
    public void removeServer() throws Exception {
        conn.close();
        pgsnap("rm", jdbcUrl);                       // rm takes the JDBC URL too
    }

    @Test
    public void createsATable() throws Exception {
        try (Statement st = conn.createStatement()) {
            st.execute("create table accounts (id int primary key, balance int)");
            st.execute("insert into accounts values (1, 100)");
            ResultSet r = st.executeQuery("select sum(balance) from accounts");
            r.next();
            assertEquals(100, r.getInt(1));
        }
    }

    @Test
    public void startsEmpty() throws Exception {
        try (Statement st = conn.createStatement()) {
            ResultSet r = st.executeQuery(
                "select count(*) from pg_tables where tablename = 'accounts'");
            r.next();
            assertEquals(0, r.getInt(1));
        }
    }
}
