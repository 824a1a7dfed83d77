package dev.pgsnap.junit;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Inherited;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Gives each test a fresh PostgreSQL database from pgsnap: inject it as a
 * {@link javax.sql.DataSource} or {@link PgsnapDatabase} parameter, or its
 * JDBC URL as a {@code @PgsnapJdbcUrl String} parameter or field.  The
 * database is removed when the test ends (kept when it failed and
 * {@code PGSNAP_KEEP_FAILED=1}).
 *
 * <p>On a test class, or on one method to give it other options than its
 * class (the nearest annotation wins).
 */
@Target({ ElementType.TYPE, ElementType.METHOD, ElementType.ANNOTATION_TYPE })
@Retention(RetentionPolicy.RUNTIME)
@Documented
@Inherited
@ExtendWith(PgsnapExtension.class)
public @interface Pgsnap {
    /** The snapshot to clone (pgsnap snapshot ls); empty: the service's default. */
    String snapshot() default "";

    /**
     * 1..1000: a fresh database of a shared server holding that many (the
     * default, 16: cheapest); 0: a whole server of its own (for tests that
     * change roles, settings or other databases).
     */
    int shared() default 16;

    /** Mock now(): a timestamp ("2024-01-01 12:00:00+00"), or "clock"; empty: off. */
    String now() default "";
}
