package dev.pgsnap.junit;

import java.lang.reflect.Constructor;
import java.lang.reflect.Executable;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import javax.sql.CommonDataSource;
import javax.sql.DataSource;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionConfigurationException;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ExtensionContext.Namespace;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolutionException;
import org.junit.jupiter.api.extension.ParameterResolver;
import org.junit.jupiter.api.extension.TestInstancePostProcessor;
import org.junit.platform.commons.support.AnnotationSupport;
import org.opentest4j.TestAbortedException;

/**
 * The JUnit 5 extension behind {@link Pgsnap}: one fresh database per test,
 * made the first time the test asks for it (a parameter, a field, a
 * constructor parameter), the same one for all its injection points and
 * its {@code @BeforeEach}/{@code @AfterEach} methods, removed when it ends.
 *
 * <p>Databases asked for at class level ({@code @BeforeAll} parameters,
 * constructor parameters of a {@code PER_CLASS} test) belong to the class
 * and are removed after it.
 *
 * <p>The owner of every database is this JVM: if it is killed, the
 * service (or {@code pgsnap gc}) ends them.  With {@code PGSNAP_KEEP_FAILED=1}
 * (or the configuration parameter {@code pgsnap.keepFailed=true}) a failed
 * test's database is kept and reported: the service's {@code keep} drops
 * its owner and time limit, so it outlives the JVM until {@code pgsnap rm}.
 */
public final class PgsnapExtension
        implements BeforeEachCallback, AfterEachCallback, ParameterResolver, TestInstancePostProcessor {
    private static final Namespace NS = Namespace.create(PgsnapExtension.class);
    /* Two keys: a store also answers with its ancestors' values, and a
     * test must not take its class's database for its own. */
    private static final String DB = "test-database";
    private static final String CLASS_DB = "class-database";
    private static final String CLASS_LEASES = "constructor-databases";
    private static final long PID = ProcessHandle.current().pid();

    /* Constructor injection under PER_METHOD: JUnit resolves constructor
     * parameters with the class's context, before the test's context
     * exists.  The database made then waits here (same thread) until the
     * instance is made (postProcessTestInstance), then until that
     * instance's test starts (beforeEach), which takes it over. */
    private static final ThreadLocal<Pending> PENDING = new ThreadLocal<>();
    private static final ThreadLocal<Constructed> CONSTRUCTED = new ThreadLocal<>();

    private record Pending(Executable constructor, int index, Lease lease) {
    }

    private record Constructed(Object instance, Lease lease) {
    }

    /** @Pgsnap's defaults, for a test that uses {@code @ExtendWith} alone. */
    @Pgsnap
    private static final class Defaults {
    }

    // ---- what a test asked for ------------------------------------------------

    @Override
    public boolean supportsParameter(ParameterContext pc, ExtensionContext ec) {
        Class<?> type = pc.getParameter().getType();
        if (pc.isAnnotated(PgsnapJdbcUrl.class)) {
            if (type != String.class)
                throw new ParameterResolutionException("@PgsnapJdbcUrl needs a String, not " + type.getName()
                        + " (parameter " + pc.getParameter() + " of " + pc.getDeclaringExecutable() + ")");
            return true;
        }
        if (isDataSourceType(type))
            return true;
        if (pc.isAnnotated(PgsnapDataSource.class))
            throw new ParameterResolutionException("@PgsnapDataSource needs a DataSource or PgsnapDatabase, not "
                    + type.getName() + " (parameter " + pc.getParameter() + " of "
                    + pc.getDeclaringExecutable() + ")");
        return false;
    }

    private static boolean isDataSourceType(Class<?> type) {
        return type == DataSource.class || type == PgsnapDatabase.class || type == CommonDataSource.class;
    }

    @Override
    public Object resolveParameter(ParameterContext pc, ExtensionContext ec) {
        PgsnapDatabase db;
        Executable ex = pc.getDeclaringExecutable();
        if (ec.getTestMethod().isPresent())
            db = testLease(ec).db;
        else if (ex instanceof Constructor && !perClass(ec))
            db = constructorLease(ex, pc.getIndex(), ec).db;
        else
            db = ec.getStore(NS).getOrComputeIfAbsent(CLASS_DB, k -> new Lease(ec, false), Lease.class).db;
        return pc.isAnnotated(PgsnapJdbcUrl.class) ? db.jdbcUrl() : db;
    }

    private static boolean perClass(ExtensionContext ec) {
        return ec.getTestInstanceLifecycle().orElse(TestInstance.Lifecycle.PER_METHOD)
                == TestInstance.Lifecycle.PER_CLASS;
    }

    /* The test's database, made on first use. */
    private static Lease testLease(ExtensionContext ec) {
        return ec.getStore(NS).getOrComputeIfAbsent(DB, k -> new Lease(ec, true), Lease.class);
    }

    /* Parameters are resolved in order: a lower or equal index than the
     * pending one's is a new construction (the last one failed).  An
     * inner (@Nested) class's constructor shares the database its
     * enclosing instance just took for the same test. */
    private static Lease constructorLease(Executable ctor, int index, ExtensionContext classCtx) {
        Pending p = PENDING.get();
        Constructed outer = CONSTRUCTED.get();
        Lease lease;
        if (p != null && p.constructor.equals(ctor) && index > p.index) {
            lease = p.lease;
        } else if (outer != null && encloses(outer.instance.getClass(), ctor.getDeclaringClass())) {
            lease = outer.lease;
        } else {
            lease = new Lease(classCtx, true);
            // Until a test takes it over, the class owns it (and removes
            // it at its end if no test did, e.g. a constructor threw).
            classLeases(classCtx).add(lease);
        }
        PENDING.set(new Pending(ctor, index, lease));
        return lease;
    }

    private static boolean encloses(Class<?> outer, Class<?> inner) {
        for (Class<?> c = inner.getEnclosingClass(); c != null; c = c.getEnclosingClass())
            if (c == outer)
                return true;
        return false;
    }

    private static List<Lease> classLeases(ExtensionContext classCtx) {
        return classCtx.getStore(NS).getOrComputeIfAbsent(CLASS_LEASES, k -> new LeaseList(), LeaseList.class)
                .leases;
    }

    @Override
    public void postProcessTestInstance(Object instance, ExtensionContext ec) {
        Pending p = PENDING.get();
        PENDING.remove();
        if (p != null && p.constructor.getDeclaringClass() == instance.getClass())
            CONSTRUCTED.set(new Constructed(instance, p.lease));
    }

    @Override
    public void beforeEach(ExtensionContext ec) {
        List<Object> instances = ec.getRequiredTestInstances().getAllInstances();
        Constructed c = CONSTRUCTED.get();
        CONSTRUCTED.remove();
        if (c != null && instances.stream().anyMatch(i -> i == c.instance)) {
            Optional<Pgsnap> own = AnnotationSupport.findAnnotation(ec.getRequiredTestMethod(), Pgsnap.class);
            Optional<ExtensionContext> cls = ec.getParent();
            if (own.isPresent() && cls.isPresent() && !own.get().equals(options(cls.get())))
                throw new ExtensionConfigurationException("@Pgsnap on " + testName(ec) + ": its class takes the "
                        + "database in its constructor, made before the method's options are known; take it "
                        + "in a field or a parameter of the method instead");
            ec.getStore(NS).put(DB, c.lease);
        }
        for (Object instance : instances) {
            inject(ec, instance, PgsnapJdbcUrl.class);
            inject(ec, instance, PgsnapDataSource.class);
        }
    }

    private static void inject(ExtensionContext ec, Object instance,
            Class<? extends java.lang.annotation.Annotation> kind) {
        for (Field f : AnnotationSupport.findAnnotatedFields(instance.getClass(), kind)) {
            String what = "@" + kind.getSimpleName() + " on " + f.getDeclaringClass().getName() + "." + f.getName();
            if (Modifier.isStatic(f.getModifiers()))
                throw new ExtensionConfigurationException(what + ": a static field cannot hold a per-test "
                        + "database (take one in a @BeforeAll parameter for a per-class one)");
            boolean url = kind == PgsnapJdbcUrl.class;
            if (url ? f.getType() != String.class : !isDataSourceType(f.getType()))
                throw new ExtensionConfigurationException(what + ": needs a field of type "
                        + (url ? "String" : "DataSource or PgsnapDatabase") + ", not " + f.getType().getName());
            PgsnapDatabase db = testLease(ec).db;
            try {
                f.setAccessible(true);
                f.set(instance, url ? db.jdbcUrl() : db);
            } catch (ReflectiveOperationException | RuntimeException e) {
                throw new ExtensionConfigurationException(what + ": cannot set it: " + e, e);
            }
        }
    }

    // ---- when the test ends ---------------------------------------------------

    @Override
    public void afterEach(ExtensionContext ec) {
        Lease lease = ec.getStore(NS).remove(DB, Lease.class);
        if (lease == null)
            return;
        Optional<Throwable> failure = ec.getExecutionException()
                .filter(t -> !(t instanceof TestAbortedException));
        if (failure.isEmpty()) {
            lease.remove();
        } else if (lease.keepFailed) {
            try {
                lease.keep();
            } catch (PgsnapException e) {
                if ("ENOENT".equals(e.errno())) // the test removed it itself
                    return;
                // Still this JVM's: it ends with it.
                throw new PgsnapException("pgsnap: cannot keep the database of failed test " + testName(ec)
                        + ": " + e.getMessage(), e.errno());
            }
            report(ec, lease.db, failure.get());
        } else {
            lease.remove();
            System.err.println("pgsnap: removed the database of failed test " + testName(ec)
                    + " (PGSNAP_KEEP_FAILED=1 keeps it)");
        }
    }

    private static void report(ExtensionContext ec, PgsnapDatabase db, Throwable failure) {
        String msg = "pgsnap: kept the database of failed test " + testName(ec) + "\n"
                + "  JDBC URL:   " + db.jdbcUrl() + "\n"
                + "  psql '" + db.url() + "'\n"
                + "  server log: " + db.log() + "\n"
                + "  remove it:  pgsnap rm " + db.id();
        System.err.println(msg);
        Map<String, String> entry = new LinkedHashMap<>();
        entry.put("pgsnap.jdbc_url", db.jdbcUrl());
        entry.put("pgsnap.log", db.log());
        entry.put("pgsnap.id", db.id());
        ec.publishReportEntry(entry);
        // Where one looks first: the console launcher, and any runner that
        // prints a failure's whole stack trace, show it with the failure.
        failure.addSuppressed(new KeptDatabase(msg));
    }

    private static String testName(ExtensionContext ec) {
        return ec.getRequiredTestClass().getName() + "." + ec.getRequiredTestMethod().getName() + "()";
    }

    /** Where a kept database is, in a failure's report (no stack trace). */
    static final class KeptDatabase extends Exception {
        private static final long serialVersionUID = 1L;

        KeptDatabase(String msg) {
            super(msg, null, false, false);
        }
    }

    // ---- the databases --------------------------------------------------------

    private static Pgsnap options(ExtensionContext ec) {
        for (Optional<ExtensionContext> c = Optional.of(ec); c.isPresent(); c = c.get().getParent()) {
            Optional<Pgsnap> a = c.get().getElement().flatMap(e -> AnnotationSupport.findAnnotation(e, Pgsnap.class));
            if (a.isPresent())
                return a.get();
        }
        return Defaults.class.getAnnotation(Pgsnap.class);
    }

    private static boolean keepFailed(ExtensionContext ec) {
        String v = ec.getConfigurationParameter("pgsnap.keepFailed").orElse(System.getenv("PGSNAP_KEEP_FAILED"));
        return v != null && (v.equals("1") || v.equalsIgnoreCase("true") || v.equalsIgnoreCase("yes"));
    }

    private static String nonEmpty(String s) {
        return s.isEmpty() ? null : s;
    }

    /** A database this extension made, and must remove unless it keeps it. */
    private static final class Lease implements ExtensionContext.Store.CloseableResource {
        final PgsnapDatabase db;
        /* Kept (not removed) if its test fails.  Until then it is this
         * JVM's like any other: a killed JVM leaves nothing behind. */
        final boolean keepFailed;
        boolean done;

        Lease(ExtensionContext ec, boolean perTest) {
            Pgsnap o = options(ec);
            keepFailed = perTest && keepFailed(ec);
            db = new PgsnapDatabase(PgsnapClient.get().call("new", PgsnapClient.args(
                    "tcp", 1,
                    "shared", o.shared(),
                    "snapshot", nonEmpty(o.snapshot()),
                    "now", nonEmpty(o.now()),
                    "owner", PID,
                    "worker", System.getProperty("org.gradle.test.worker"))));
        }

        /* Drops its owner and time limit: it stays until pgsnap rm. */
        synchronized void keep() {
            if (done)
                return;
            db.update(PgsnapClient.get().keep(db.id()));
            done = true;
        }

        synchronized void remove() {
            if (done)
                return;
            done = true;
            try {
                PgsnapClient.get().call("rm", PgsnapClient.args("id", db.id()));
            } catch (PgsnapException e) {
                if (!"ENOENT".equals(e.errno())) // already gone: nothing to do
                    throw e;
            }
        }

        @Override
        public void close() {
            remove();
        }
    }

    /** A class's constructor databases no test took over, removed with it. */
    private static final class LeaseList implements ExtensionContext.Store.CloseableResource {
        final List<Lease> leases = java.util.Collections.synchronizedList(new ArrayList<>());

        @Override
        public void close() {
            synchronized (leases) {
                for (Lease l : leases)
                    l.remove();
            }
        }
    }
}
