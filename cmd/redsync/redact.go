//go:build unix

package main

import "strings"

// hidden replaces a password in what redsync prints.
const hidden = "xxxxx"

// redact returns node address s as redsync prints it, and the text that it
// hides. Whatever lies between the scheme (if any) and the last "@" is
// user information: its part after the first ":" is taken for a password,
// and without a ":" all of it, since a lone name may be one. The last "@"
// and no URL parser decides, so that a password with an unescaped "?",
// "#", "/" or "@" is hidden too.
func redact(s string) (label, secret string) {
	at := strings.LastIndex(s, "@")
	if at < 0 {
		return s, ""
	}
	scheme, userinfo := "", s[:at]
	if i := strings.Index(userinfo, "://"); i >= 0 {
		scheme, userinfo = userinfo[:i+3], userinfo[i+3:]
	}
	user, password, ok := strings.Cut(userinfo, ":")
	if !ok {
		user, password = "", userinfo
	}
	if password == "" {
		return s, ""
	}
	if ok {
		user += ":"
	}
	return scheme + user + hidden + s[at:], password
}
