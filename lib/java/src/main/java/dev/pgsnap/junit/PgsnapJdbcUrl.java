package dev.pgsnap.junit;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * On a {@code String} parameter (of a test method or constructor) or field
 * of a {@link Pgsnap} test: the JDBC URL of the test's fresh database,
 * user and password included.
 */
@Target({ ElementType.PARAMETER, ElementType.FIELD })
@Retention(RetentionPolicy.RUNTIME)
@Documented
public @interface PgsnapJdbcUrl {
}
