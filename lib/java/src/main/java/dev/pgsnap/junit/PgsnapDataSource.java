package dev.pgsnap.junit;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * On a field of type {@link javax.sql.DataSource} or {@link PgsnapDatabase}
 * of a {@link Pgsnap} test: set to the test's fresh database before each
 * test (and before its {@code @BeforeEach} methods).  Parameters of those
 * types need no annotation.
 */
@Target({ ElementType.PARAMETER, ElementType.FIELD })
@Retention(RetentionPolicy.RUNTIME)
@Documented
public @interface PgsnapDataSource {
}
