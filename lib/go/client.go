package pgsnap

// The service protocol (docs/protocol.md in the pgsnap tree): one Unix
// socket connection per process, a line out and a JSON line back.  The
// connection is shared by every test of the process behind a mutex: the
// service answers a connection's requests in order, and a handout takes
// about a millisecond, so parallel tests lose little by taking turns.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
)

// Error is the service's answer to a request it refused.
type Error struct {
	Verb    string // the request's verb: new, rm, ...
	Message string // one line for people
	Errno   string // the symbolic errno: ENOENT, EINVAL, ...
	Status  int    // the exit status pgsnap would use: 2 bad request, 1 other
}

func (e *Error) Error() string {
	return fmt.Sprintf("pgsnap service: %s: %s", e.Verb, e.Message)
}

type client struct {
	mu   sync.Mutex
	path string // the socket, once found
	conn net.Conn
	r    *bufio.Reader
}

// The process's one connection.
var service client

// word is one key=value of a request.
type word struct{ key, value string }

// call sends verb and its words and returns the answer's JSON.  A service
// that went away (killed, restarted) is started again and the request
// retried once; retried tells the caller that the first try may have
// been carried out.
func (c *client) call(verb string, words ...word) (answer []byte, retried bool, err error) {
	var b strings.Builder
	b.WriteString(verb)
	for _, w := range words {
		b.WriteString(" " + w.key + "=" + url.QueryEscape(w.value))
	}
	b.WriteByte('\n')
	req := b.String()

	c.mu.Lock()
	defer c.mu.Unlock()
	for try := 0; ; try++ {
		answer, err = c.roundTrip(req, try > 0)
		if err == nil || try > 0 || !gone(err) {
			break
		}
		c.close()
		retried = true
	}
	if err != nil {
		c.close()
		return nil, retried, fmt.Errorf("pgsnap service: %s: %w", verb, err)
	}
	return answer, retried, checkOK(verb, answer)
}

// roundTrip connects unless connected (restart: start the service first)
// and exchanges one line.
func (c *client) roundTrip(req string, restart bool) ([]byte, error) {
	if c.conn == nil {
		if err := c.connect(restart); err != nil {
			return nil, err
		}
	}
	if _, err := io.WriteString(c.conn, req); err != nil {
		return nil, err
	}
	return c.readLine()
}

// startTries bounds the `service start`s of one connect: a service with
// nothing to watch leaves at once, and may do so between `service start`
// printing its socket and our connecting to it.
const startTries = 5

// connect connects to the known socket (PGSNAP_SOCKET at first), else, or
// when nobody is there, to the one `service start` prints; restart
// starts the service first.
func (c *client) connect(restart bool) error {
	if c.path == "" && !restart {
		c.path = os.Getenv("PGSNAP_SOCKET")
	}
	var err error
	for try := 0; try < startTries; try++ {
		if c.path == "" || restart || try > 0 {
			var p string
			if p, err = startService(); err != nil {
				continue
			}
			c.path = p
		}
		if err = c.dial(); err == nil || !gone(err) {
			return err
		}
	}
	return err
}

// dial connects and says hello.
func (c *client) dial() error {
	conn, err := net.Dial("unix", c.path)
	if err != nil {
		return err
	}
	c.conn, c.r = conn, bufio.NewReaderSize(conn, 16384)
	if err := c.hello(); err != nil {
		c.close()
		return err
	}
	return nil
}

func (c *client) hello() error {
	if _, err := io.WriteString(c.conn, "pgsnap 1\n"); err != nil {
		return err
	}
	hello, err := c.readLine()
	if err != nil {
		return err
	}
	if err := checkOK("hello", hello); err != nil {
		return err
	}
	var h struct {
		Protocol int `json:"protocol"`
	}
	if err := json.Unmarshal(hello, &h); err != nil || h.Protocol != 1 {
		return fmt.Errorf("the service at %s speaks protocol %d, not 1", c.path, h.Protocol)
	}
	return nil
}

func (c *client) readLine() ([]byte, error) {
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return line, nil
}

func (c *client) close() {
	if c.conn != nil {
		c.conn.Close()
	}
	c.conn, c.r = nil, nil
}

// gone: the service is not there (any more): a closed connection, no
// socket, nobody listening on it.
func gone(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNRESET)
}

// startService runs `pgsnap service start`, which starts the store's
// service unless it runs and prints its socket.
func startService() (string, error) {
	bin := os.Getenv("PGSNAP_BIN")
	if bin == "" {
		bin = "pgsnap"
	}
	cmd := exec.Command(bin, "service", "start")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return "", fmt.Errorf("%s service start: %v: %s", bin, err, msg)
		}
		return "", fmt.Errorf("%s service start: %v (set PGSNAP_BIN to the pgsnap program)", bin, err)
	}
	path := strings.TrimSpace(string(out))
	if path == "" || strings.Contains(path, "\n") {
		return "", fmt.Errorf("%s service start printed %q, not a socket path", bin, out)
	}
	return path, nil
}

func checkOK(verb string, answer []byte) error {
	var a struct {
		OK     bool   `json:"ok"`
		Error  string `json:"error"`
		Errno  string `json:"errno"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal(answer, &a); err != nil {
		return fmt.Errorf("pgsnap service: %s: answer is not JSON: %q", verb, answer)
	}
	if !a.OK {
		return &Error{Verb: verb, Message: a.Error, Errno: a.Errno, Status: a.Status}
	}
	return nil
}
