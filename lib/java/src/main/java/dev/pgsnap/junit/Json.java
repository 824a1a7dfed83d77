package dev.pgsnap.junit;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A reader for the service's answers (one JSON object per line): objects
 * become {@code Map<String, Object>}, arrays {@code List<Object>}, numbers
 * {@code Long} (or {@code Double} when not whole), and true/false/null
 * themselves.  The JDK has no JSON parser and the answers are small, so
 * this is a plain recursive descent with no dependency.
 */
final class Json {
    private final String s;
    private int i;

    private Json(String s) {
        this.s = s;
    }

    /** The object on one line; IllegalArgumentException when it is not one. */
    @SuppressWarnings("unchecked")
    static Map<String, Object> parseObject(String line) {
        Json j = new Json(line);
        Object v = j.value();
        j.space();
        if (j.i != line.length() || !(v instanceof Map))
            throw j.bad("a single JSON object");
        return (Map<String, Object>) v;
    }

    private IllegalArgumentException bad(String want) {
        return new IllegalArgumentException("malformed answer from the pgsnap service (wanted "
                + want + " at offset " + i + "): " + s);
    }

    private void space() {
        while (i < s.length() && " \t\r\n".indexOf(s.charAt(i)) >= 0)
            i++;
    }

    private boolean eat(char c) {
        space();
        if (i < s.length() && s.charAt(i) == c) {
            i++;
            return true;
        }
        return false;
    }

    private Object value() {
        space();
        if (i >= s.length())
            throw bad("a value");
        char c = s.charAt(i);
        switch (c) {
        case '{':
            return object();
        case '[':
            return array();
        case '"':
            return string();
        case 't':
            return word("true", Boolean.TRUE);
        case 'f':
            return word("false", Boolean.FALSE);
        case 'n':
            return word("null", null);
        default:
            return number();
        }
    }

    private Map<String, Object> object() {
        Map<String, Object> m = new LinkedHashMap<>();
        i++;
        if (eat('}'))
            return m;
        do {
            space();
            if (i >= s.length() || s.charAt(i) != '"')
                throw bad("a key");
            String k = string();
            if (!eat(':'))
                throw bad("':'");
            m.put(k, value());
        } while (eat(','));
        if (!eat('}'))
            throw bad("',' or '}'");
        return m;
    }

    private List<Object> array() {
        List<Object> l = new ArrayList<>();
        i++;
        if (eat(']'))
            return l;
        do {
            l.add(value());
        } while (eat(','));
        if (!eat(']'))
            throw bad("',' or ']'");
        return l;
    }

    private String string() {
        StringBuilder b = new StringBuilder();
        i++;
        while (i < s.length()) {
            char c = s.charAt(i++);
            if (c == '"')
                return b.toString();
            if (c != '\\') {
                b.append(c);
                continue;
            }
            if (i >= s.length())
                break;
            char e = s.charAt(i++);
            switch (e) {
            case 'b': b.append('\b'); break;
            case 'f': b.append('\f'); break;
            case 'n': b.append('\n'); break;
            case 'r': b.append('\r'); break;
            case 't': b.append('\t'); break;
            case 'u':
                if (i + 4 > s.length())
                    throw bad("four hex digits");
                try {
                    b.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
                } catch (NumberFormatException x) {
                    throw bad("four hex digits");
                }
                i += 4;
                break;
            default:
                b.append(e); // \" \\ \/
            }
        }
        throw bad("the end of a string");
    }

    private Object word(String w, Object v) {
        if (!s.startsWith(w, i))
            throw bad(w);
        i += w.length();
        return v;
    }

    private Object number() {
        int start = i;
        while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0)
            i++;
        String n = s.substring(start, i);
        try {
            if (n.indexOf('.') < 0 && n.indexOf('e') < 0 && n.indexOf('E') < 0)
                return Long.valueOf(n);
            return Double.valueOf(n);
        } catch (NumberFormatException x) {
            i = start;
            throw bad("a value");
        }
    }
}
