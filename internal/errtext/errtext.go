// Package errtext renders ckpt's errors for people, in its commands.
//
// Library errors say in which package they arose ("s3store: ...",
// "ckpt: job ..."), as Go libraries do, at every level of wrapping. A
// command's user is told what happened and what to do, not where in ckpt's
// code: the commands (cmd/ckpt, asset/assetcli) print errors through
// Plain.
package errtext

import (
	"regexp"
	"strings"
)

// packagePrefix matches the package names that library errors may carry
// in front of their messages, at the start, after a colon or a semicolon,
// or after an opening parenthesis.
var packagePrefix = regexp.MustCompile(`(^|: |; |\()(ckpt|pipeline|source|sink|convert|aggregate|store|filestore|memstore|s3store|pgstore|pgsink|asset|eventlog|codec|file codec): `)

// Plain returns msg without the package prefixes of ckpt's libraries, on
// one line (line breaks become "; ", runs of spaces one space).
func Plain(msg string) string {
	msg = strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n", "; ")), " ")
	for {
		m := packagePrefix.ReplaceAllString(msg, "$1")
		if m == msg {
			break
		}
		msg = m
	}
	return msg
}
