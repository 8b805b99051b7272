//go:build unix

package main

import (
	"net/url"
	"strings"
)

// hidden replaces a password in what redsync prints.
const hidden = "xxxxx"

// redact returns node address s as redsync prints it, and whether it hid
// anything. Whatever lies between the scheme and the last "@" is user
// information: its part after the first ":" is taken for a password, and
// without a ":" all of it, since a lone name may be one. An address
// without a scheme has all of it hidden. The last "@" and no URL parser
// decides, so that a password with an unescaped "?", "#", "/" or "@" is
// hidden too. In a URL, the values of query parameters that the driver
// does not know (?password=...) are hidden, and so is a fragment.
func redact(s string) (label string, hid bool) {
	scheme, rest := "", s
	if i := strings.Index(s, "://"); i >= 0 {
		scheme, rest = s[:i+3], s[i+3:]
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		user, password, ok := strings.Cut(rest[:at], ":")
		switch {
		case scheme == "" || !ok:
			// A lone name may be a password.
			hid = hid || rest[:at] != ""
			rest = hidden + rest[at:]
		case password != "":
			hid = true
			rest = user + ":" + hidden + rest[at:]
		}
	}
	if scheme != "" {
		var queryHid bool
		rest, queryHid = redactQuery(rest)
		hid = hid || queryHid
	}
	return scheme + rest, hid
}

// redactQuery hides, in rest (a URL after its scheme, with its user
// information hidden already), the fragment and the values of the query
// parameters that are not in knownOptions; a parameter without a value
// is hidden whole.
func redactQuery(rest string) (string, bool) {
	hid := false
	if i := strings.Index(rest, "#"); i >= 0 && i+1 < len(rest) {
		rest, hid = rest[:i+1]+hidden, true
	}
	q := strings.Index(rest, "?")
	if q < 0 {
		return rest, hid
	}
	query, fragment := rest[q+1:], ""
	if i := strings.Index(query, "#"); i >= 0 {
		query, fragment = query[:i], query[i:]
	}
	params := strings.Split(query, "&")
	for i, p := range params {
		key, value, ok := strings.Cut(p, "=")
		if name, err := url.QueryUnescape(key); err == nil && knownOptions[name] || p == "" || ok && value == "" {
			continue
		}
		hid = true
		if ok {
			params[i] = key + "=" + hidden
		} else {
			params[i] = hidden
		}
	}
	return rest[:q+1] + strings.Join(params, "&") + fragment, hid
}

// knownOptions are the query parameters of the driver's URLs
// (go-redis's ParseURL), whose values are no secrets: numbers,
// durations, booleans and a client name. Any other parameter makes the
// URL invalid, and its value may be a password.
var knownOptions = map[string]bool{
	"db": true, "protocol": true, "client_name": true, "max_retries": true,
	"min_retry_backoff": true, "max_retry_backoff": true, "dial_timeout": true,
	"read_timeout": true, "write_timeout": true, "pool_fifo": true, "pool_size": true,
	"pool_timeout": true, "min_idle_conns": true, "max_idle_conns": true,
	"max_active_conns": true, "max_concurrent_dials": true, "pipeline_pool_size": true,
	"pipeline_read_buffer_size": true, "pipeline_write_buffer_size": true,
	"conn_max_idle_time": true, "idle_timeout": true, "conn_max_lifetime": true,
	"max_conn_age": true, "conn_max_lifetime_jitter": true, "skip_verify": true,
}
