package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// codeLines returns the lines of the fenced code blocks of a Markdown file.
func codeLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "```") {
			in = !in
			continue
		}
		if in {
			lines = append(lines, l)
		}
	}
	return lines
}

// shellWords splits a command line as a shell does for the simple lines
// of the docs: words separated by spaces, single-quoted parts kept whole,
// and a comment ("  # ...") dropped.
func shellWords(line string) []string {
	var words []string
	var w strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted && c == '\'':
			quoted = false
		case quoted:
			w.WriteByte(c)
		case c == '\'':
			quoted, inWord = true, true
		case c == '#' && !inWord:
			i = len(line)
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// Every ckpt command the README and docs/CLI.md show is one the CLI has,
// with flags it takes and arguments it accepts.
func TestDocumentedCommandsExist(t *testing.T) {
	n := 0
	for _, doc := range []string{"../../README.md", "../../docs/CLI.md"} {
		for _, line := range codeLines(t, doc) {
			words := shellWords(strings.TrimSpace(line))
			if len(words) == 0 || words[0] != "ckpt" {
				continue
			}
			n++
			args := words[1:]
			root := newRootCmd(newApp(nil, nil, nil))
			root.InitDefaultHelpCmd()
			root.InitDefaultCompletionCmd()
			root.InitDefaultVersionFlag()
			cmd, rest, err := root.Find(args)
			if err != nil {
				t.Errorf("%s: %q: %v", doc, line, err)
				continue
			}
			if err := cmd.ParseFlags(rest); err != nil {
				t.Errorf("%s: %q: %v", doc, line, err)
				continue
			}
			pos := cmd.Flags().Args()
			if cmd.HasAvailableSubCommands() && len(pos) > 0 {
				t.Errorf("%s: %q: %q is not a command of %s", doc, line, pos[0], cmd.CommandPath())
				continue
			}
			if err := cmd.ValidateArgs(pos); err != nil {
				t.Errorf("%s: %q: %v", doc, line, err)
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d ckpt commands found in the docs", n)
	}
}

// The README's command-line session runs as printed, in order (on a
// smaller sample, and without the PostgreSQL line when no server is
// configured for it).
func TestREADMESessionRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the README's session with the built binary: skipped with -short")
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	c := buildCLI(t)
	gendata := filepath.Join(t.TempDir(), "gendata")
	if out, err := exec.Command("go", "build", "-o", gendata, "../../internal/cmd/gendata").CombinedOutput(); err != nil {
		t.Fatalf("go build gendata: %v\n%s", err, out)
	}
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	start := strings.Index(readme, "## The command line")
	end := strings.Index(readme, "## The library")
	if start < 0 || end < start {
		t.Fatal("README.md has no section \"The command line\"")
	}
	try := t.TempDir()
	var script []string
	in := false
	for _, l := range strings.Split(readme[start:end], "\n") {
		if strings.HasPrefix(l, "```") {
			in = !in
			continue
		}
		switch {
		case !in, strings.HasPrefix(l, "make build"):
			continue // the test's binary is on PATH
		case strings.Contains(l, "postgres://"):
			continue
		}
		l = strings.ReplaceAll(l, "go run ./internal/cmd/gendata", gendata)
		l = strings.ReplaceAll(l, "-rows 1000000", "-rows 3000")
		l = strings.ReplaceAll(l, "/tmp/ckpt-try", try)
		script = append(script, l)
	}
	cmd := exec.Command(bash, "-euo", "pipefail", "-x", "-c", strings.Join(script, "\n"))
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(c.bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's session failed: %v\n%s", err, out)
	}
	for _, want := range []string{`"status": "already_done"`, "checkpoint 1: ok"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the session's output lacks %q:\n%s", want, out)
		}
	}
}
