package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Kind identifies the RESP2 type of a [Reply].
type Kind int

// The reply kinds produced by the RESP2 decoder.
const (
	// KindStatus is a simple string reply such as "+OK" or "+PONG".
	KindStatus Kind = iota + 1
	// KindError is an error reply ("-ERR ..."). At the top level of a
	// command, Do also returns it as a [ServerError]; inside arrays (for
	// example the results of EXEC or of a Lua script) it is kept as an
	// element of this kind.
	KindError
	// KindInt is an integer reply (":42").
	KindInt
	// KindBulk is a non-nil bulk string reply ("$3\r\nfoo").
	KindBulk
	// KindNil is a nil bulk string ("$-1") or a nil array ("*-1").
	KindNil
	// KindArray is a (possibly empty, possibly nested) array reply.
	KindArray
)

// String returns the name of the kind, for example "bulk".
func (k Kind) String() string {
	switch k {
	case KindStatus:
		return "status"
	case KindError:
		return "error"
	case KindInt:
		return "integer"
	case KindBulk:
		return "bulk"
	case KindNil:
		return "nil"
	case KindArray:
		return "array"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Reply is one decoded RESP2 reply.
//
// Exactly one of the value fields is meaningful, depending on Kind: Str for
// KindStatus, KindError and KindBulk; Int for KindInt; Elems for KindArray.
// The zero Reply (Kind 0) is what Do returns together with a non-server
// error such as a network failure.
type Reply struct {
	Kind  Kind
	Str   string
	Int   int64
	Elems []Reply
}

// IsNil reports whether the reply is a nil bulk string or a nil array.
func (r Reply) IsNil() bool { return r.Kind == KindNil }

// Text returns the reply as plain text: the string of a status, error or
// bulk reply, the decimal form of an integer reply, and "" for nil and array
// replies.
func (r Reply) Text() string {
	switch r.Kind {
	case KindStatus, KindError, KindBulk:
		return r.Str
	case KindInt:
		return strconv.FormatInt(r.Int, 10)
	}
	return ""
}

// Integer returns the value of an integer reply, or parses a status or bulk
// reply holding a decimal integer (as GET of a counter returns).
func (r Reply) Integer() (int64, error) {
	switch r.Kind {
	case KindInt:
		return r.Int, nil
	case KindStatus, KindBulk:
		n, err := strconv.ParseInt(r.Str, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("redistest: %s reply %q is not an integer", r.Kind, r.Str)
		}
		return n, nil
	}
	return 0, fmt.Errorf("redistest: %s reply is not an integer", r.Kind)
}

// Strings returns the elements of a flat array reply as strings, using
// [Reply.Text] for each element. Nil elements become "". It fails for
// non-array replies (a nil array gives a nil slice and no error) and for
// arrays that contain nested arrays.
func (r Reply) Strings() ([]string, error) {
	switch r.Kind {
	case KindNil:
		return nil, nil
	case KindArray:
	default:
		return nil, fmt.Errorf("redistest: %s reply is not an array", r.Kind)
	}
	out := make([]string, len(r.Elems))
	for i, e := range r.Elems {
		if e.Kind == KindArray {
			return nil, fmt.Errorf("redistest: element %d is a nested array", i)
		}
		out[i] = e.Text()
	}
	return out, nil
}

// String formats the reply in a redis-cli like notation, for logs and test
// failure messages.
func (r Reply) String() string {
	var b strings.Builder
	r.format(&b)
	return b.String()
}

func (r Reply) format(b *strings.Builder) {
	switch r.Kind {
	case KindStatus:
		b.WriteString(r.Str)
	case KindError:
		b.WriteString("(error) ")
		b.WriteString(r.Str)
	case KindInt:
		b.WriteString("(integer) ")
		b.WriteString(strconv.FormatInt(r.Int, 10))
	case KindBulk:
		b.WriteString(strconv.Quote(r.Str))
	case KindNil:
		b.WriteString("(nil)")
	case KindArray:
		b.WriteByte('[')
		for i, e := range r.Elems {
			if i > 0 {
				b.WriteString(", ")
			}
			e.format(b)
		}
		b.WriteByte(']')
	default:
		b.WriteString("(invalid reply)")
	}
}

// ServerError is an error reply sent by redis-server. Its text is the
// server's error line without the leading '-', for example
// "WRONGTYPE Operation against a key holding the wrong kind of value".
// Use errors.As to tell it apart from network errors.
type ServerError string

// Error returns the server's error line.
func (e ServerError) Error() string { return string(e) }

// Prefix returns the first word of the error line, such as "ERR",
// "WRONGTYPE" or "NOAUTH".
func (e ServerError) Prefix() string {
	s := string(e)
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[:i]
	}
	return s
}

// maxBulkLen bounds the size of a bulk string or array the decoder accepts;
// it matches redis' default proto-max-bulk-len.
const maxBulkLen = 512 << 20

// maxDepth bounds the nesting of arrays the decoder accepts.
const maxDepth = 64

// appendCommand appends args encoded as a RESP2 array of bulk strings.
func appendCommand(buf []byte, args ...string) []byte {
	buf = append(buf, '*')
	buf = strconv.AppendInt(buf, int64(len(args)), 10)
	buf = append(buf, '\r', '\n')
	for _, a := range args {
		buf = append(buf, '$')
		buf = strconv.AppendInt(buf, int64(len(a)), 10)
		buf = append(buf, '\r', '\n')
		buf = append(buf, a...)
		buf = append(buf, '\r', '\n')
	}
	return buf
}

var errProtocol = errors.New("redistest: protocol error")

// readLine reads one CRLF terminated line and returns it without the CRLF.
func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		if err == io.EOF && line != "" {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return "", fmt.Errorf("%w: line %q not terminated by CRLF", errProtocol, line)
	}
	return line[:len(line)-2], nil
}

// readReply decodes one RESP2 reply. Error replies are returned as replies of
// KindError, not as Go errors; the returned error is reserved for I/O and
// protocol failures.
func readReply(r *bufio.Reader) (Reply, error) {
	return readReplyDepth(r, 0)
}

func readReplyDepth(r *bufio.Reader, depth int) (Reply, error) {
	if depth > maxDepth {
		return Reply{}, fmt.Errorf("%w: arrays nested deeper than %d", errProtocol, maxDepth)
	}
	line, err := readLine(r)
	if err != nil {
		return Reply{}, err
	}
	if line == "" {
		return Reply{}, fmt.Errorf("%w: empty line", errProtocol)
	}
	body := line[1:]
	switch line[0] {
	case '+':
		return Reply{Kind: KindStatus, Str: body}, nil
	case '-':
		return Reply{Kind: KindError, Str: body}, nil
	case ':':
		n, err := strconv.ParseInt(body, 10, 64)
		if err != nil {
			return Reply{}, fmt.Errorf("%w: bad integer %q", errProtocol, body)
		}
		return Reply{Kind: KindInt, Int: n}, nil
	case '$':
		n, err := parseLen(body)
		if err != nil {
			return Reply{}, err
		}
		if n < 0 {
			return Reply{Kind: KindNil}, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return Reply{}, err
		}
		if buf[n] != '\r' || buf[n+1] != '\n' {
			return Reply{}, fmt.Errorf("%w: bulk string not terminated by CRLF", errProtocol)
		}
		return Reply{Kind: KindBulk, Str: string(buf[:n])}, nil
	case '*':
		n, err := parseLen(body)
		if err != nil {
			return Reply{}, err
		}
		if n < 0 {
			return Reply{Kind: KindNil}, nil
		}
		elems := make([]Reply, 0, min(n, 1024))
		for range n {
			e, err := readReplyDepth(r, depth+1)
			if err != nil {
				return Reply{}, err
			}
			elems = append(elems, e)
		}
		return Reply{Kind: KindArray, Elems: elems}, nil
	}
	return Reply{}, fmt.Errorf("%w: unexpected reply type %q", errProtocol, line[0])
}

// parseLen parses the length of a bulk string or array; -1 means nil.
func parseLen(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < -1 || n > maxBulkLen {
		return 0, fmt.Errorf("%w: bad length %q", errProtocol, s)
	}
	return n, nil
}
