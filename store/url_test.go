package store_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/ckptdev/ckpt/store"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		in     string
		scheme string
		path   string
		host   string // URL.Host, for URL forms
	}{
		{"./dir", "file", "dir", ""},
		{"dir", "file", "dir", ""},
		{"dir/sub/", "file", "dir/sub", ""},
		{"/abs", "file", "/abs", ""},
		{"/abs/../abs/dir/", "file", "/abs/dir", ""},
		{"my.dir://x", "file", "my.dir:/x", ""}, // not a scheme: a path that looks like one
		{"file:///abs", "file", "/abs", ""},
		{"file:///abs/dir/", "file", "/abs/dir", ""},
		{"file://localhost/abs", "file", "/abs", "localhost"},
		{"FILE:///abs", "file", "/abs", ""},
		{"mem://x", "mem", "x", "x"},
		{"mem://tests/a", "mem", "tests/a", "tests"},
		{"s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1", "s3", "prefix", "bucket"},
		{"s3://bucket", "s3", "", "bucket"},
		{"s3://bucket/a/b/", "s3", "a/b", "bucket"},
		{"postgres://user:secret@host/db", "postgres", "", "host"},
		{"postgresql://user:secret@host:5432/db?sslmode=disable", "postgres", "", "host:5432"},
	}
	for _, tc := range tests {
		loc, err := store.ParseURL(tc.in)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.in, err)
			continue
		}
		if loc.Scheme != tc.scheme || loc.Path != tc.path {
			t.Errorf("ParseURL(%q) = scheme %q path %q, want %q %q", tc.in, loc.Scheme, loc.Path, tc.scheme, tc.path)
		}
		if loc.Scheme == "file" && loc.String() != loc.Path {
			t.Errorf("ParseURL(%q).String() = %q, want the directory %q", tc.in, loc.String(), loc.Path)
		}
		if tc.host != "" && (loc.URL == nil || loc.URL.Host != tc.host) {
			t.Errorf("ParseURL(%q).URL = %v, want host %q", tc.in, loc.URL, tc.host)
		}
	}

	loc, err := store.ParseURL("s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	if got := loc.Query.Get("endpoint"); got != "http://127.0.0.1:9000" {
		t.Errorf("endpoint = %q, want http://127.0.0.1:9000", got)
	}
	if got := loc.Query.Get("region"); got != "us-east-1" {
		t.Errorf("region = %q, want us-east-1", got)
	}
	// Backends need the credentials that String hides.
	loc, err = store.ParseURL("postgres://user:secret@host/db")
	if err != nil {
		t.Fatal(err)
	}
	_ = loc.String()
	if pw, _ := loc.URL.User.Password(); loc.URL.User.Username() != "user" || pw != "secret" {
		t.Errorf("URL.User = %v after String, want user and its password", loc.URL.User)
	}
	if loc.URL.Path != "/db" {
		t.Errorf("URL.Path = %q, want /db", loc.URL.Path)
	}
}

func TestParseURLRefuses(t *testing.T) {
	tests := []struct {
		in       string
		mentions []string // what the message must say to help
	}{
		{"", []string{"empty"}},
		{"   ", []string{"empty"}},
		{"file://host/x", []string{"file:///abs/dir"}},
		{"file://", []string{"no directory"}},
		{"s3://", []string{"no bucket", "s3://bucket/prefix"}},
		{"s3:///prefix", []string{"no bucket"}},
		{"ftp://x", []string{`"ftp"`, "directory path", "file://", "s3://", "postgres://"}},
		{"postgres://user:p%zz@host/db", []string{"postgres"}},
	}
	for _, tc := range tests {
		loc, err := store.ParseURL(tc.in)
		if !errors.Is(err, store.ErrBadURL) {
			t.Errorf("ParseURL(%q) = %+v, %v; want an error matching store.ErrBadURL", tc.in, loc, err)
			continue
		}
		for _, m := range tc.mentions {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("ParseURL(%q): error %q does not mention %q", tc.in, err, m)
			}
		}
	}
}

// Neither a Location's String nor an error of ParseURL may show a password
// or a secret query value: both end up in logs.
func TestSecretsNeverShow(t *testing.T) {
	tests := []struct {
		in      string
		secrets []string
		keep    []string // what the redacted form still shows
	}{
		{"postgres://user:S3cr3tPW@host/db", []string{"S3cr3tPW"}, []string{"user", "host/db"}},
		{"postgresql://user:p%40ss%2Fw0rd@host/db", []string{"p@ss/w0rd", "p%40ss%2Fw0rd", "p%40ss"}, []string{"user", "host"}},
		{"postgres://host/db?password=QPW1&sslmode=require", []string{"QPW1"}, []string{"sslmode=require"}},
		{"postgres://u@host/db?sslpassword=SSLPW1&sslkey=%2Fkeys%2Fclient.key", []string{"SSLPW1", "client.key"}, []string{"host/db"}},
		{"s3://bucket/prefix?endpoint=http://127.0.0.1:9000&secret_key=AWSSECRET1&session_token=TOKVAL1&SECRET=UPPER1",
			[]string{"AWSSECRET1", "TOKVAL1", "UPPER1"}, []string{"bucket", "endpoint="}},
		{"s3://AKID:AWSSECRET2@bucket/prefix", []string{"AWSSECRET2"}, []string{"bucket/prefix"}},
		// Credentials nested in a parameter that is itself an address.
		{"s3://bucket/prefix?endpoint=http://user:NESTED1@127.0.0.1:9000", []string{"NESTED1"}, []string{"bucket", "user", "127.0.0.1"}},
		{"s3://bucket/p?endpoint=" + url.QueryEscape("http://user:NESTED2@host:9000/?token=NESTED3&region=eu"),
			[]string{"NESTED2", "NESTED3"}, []string{"host", "region"}},
		{"s3://bucket/p?endpoint=http://h/?x=" + url.QueryEscape("https://u:NESTED4@deeper/?password=NESTED5"),
			[]string{"NESTED4", "NESTED5"}, []string{"deeper"}},
		{"s3://bucket/p?endpoint=user:NESTED6@host:9000", []string{"NESTED6"}, []string{"host"}},
		{"s3://bucket/p?proxy=socks5://u:NESTED7@127.0.0.1:1080&region=us-east-1", []string{"NESTED7"}, []string{"region=us-east-1", "u:"}},
		{"postgres://u@host/db?sslcert=c.pem&api_key=NESTED8&private_key=NESTED9&passwd=NESTED10&auth=NESTED11",
			[]string{"NESTED8", "NESTED9", "NESTED10", "NESTED11"}, []string{"sslcert=c.pem"}},
		{"postgres://u@host/db?options=" + url.QueryEscape("-c search_path=x"), nil, []string{"search_path"}},
		{"s3://bucket/p?endpoint=http://h:1#u:NESTED12@frag", []string{"NESTED12"}, []string{"bucket"}},
	}
	for _, tc := range tests {
		loc, err := store.ParseURL(tc.in)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.in, err)
			continue
		}
		u, err := url.Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		for _, shown := range []string{loc.String(), store.Redact(u)} {
			for _, s := range tc.secrets {
				if strings.Contains(shown, s) {
					t.Errorf("%q shows the secret %q", shown, s)
				}
			}
			for _, k := range tc.keep {
				if !strings.Contains(shown, k) {
					t.Errorf("%q lost %q, which is no secret", shown, k)
				}
			}
		}
	}

	// Refused addresses: the error is shown to people and logged.
	refused := []struct{ in, secret string }{
		{"s3://AKID:AWSSECRET3@/prefix", "AWSSECRET3"},
		{"file://u:FILESECRET1@host/x", "FILESECRET1"},
		{"file://u:FILESECRET2@", "FILESECRET2"},
		{"postgres://u:BAD%zzPW@host/db", "BAD"},
		{"ftp://u:FTPSECRET@x", "FTPSECRET"},
	}
	for _, tc := range refused {
		_, err := store.ParseURL(tc.in)
		if err == nil {
			t.Errorf("ParseURL(%q) succeeded, want an error", tc.in)
			continue
		}
		if strings.Contains(err.Error(), tc.secret) {
			t.Errorf("ParseURL(%q): error %q shows the secret %q", tc.in, err, tc.secret)
		}
	}
}

func TestTyposAreNotTakenForDirectories(t *testing.T) {
	for _, raw := range []string{"s3:/bucket/prefix", "s3:bucket", "postgres:/db", "file:/abs", "host=db user=app password=hunter2 dbname=x", "dbname=shop"} {
		loc, err := store.ParseURL(raw)
		if !errors.Is(err, store.ErrBadURL) {
			t.Errorf("ParseURL(%q) = %+v, %v; want ErrBadURL", raw, loc, err)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("ParseURL(%q): the error shows the password: %v", raw, err)
		}
	}
	for _, raw := range []string{"./s3:bucket", "data/a=b", "my.dir"} {
		if loc, err := store.ParseURL(raw); err != nil || loc.Scheme != "file" {
			t.Errorf("ParseURL(%q) = %+v, %v; want a local directory", raw, loc, err)
		}
	}
}
