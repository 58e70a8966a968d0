package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// csvFlags are the flags of CSV input and output: separators and the
// column names of header-less input.
type csvFlags struct {
	delimiter, outDelimiter string
	columns                 []string
}

func (f *csvFlags) add(cmd *cobra.Command, output bool) {
	fl := cmd.Flags()
	fl.StringVar(&f.delimiter, "delimiter", "", "field separator of CSV input: one character, or tab, comma, semicolon, pipe (default: a comma, a tab for .tsv)")
	fl.StringSliceVar(&f.columns, "columns", nil, "CSV input has no header line: these are its column names, comma-separated")
	if output {
		fl.StringVar(&f.outDelimiter, "out-delimiter", "", "field separator of CSV output: as --delimiter (default: a comma, a tab for .tsv)")
	}
}

// parse returns the separators (0: the format's own) and column names.
func (f *csvFlags) parse(cmd *cobra.Command) (in, out byte, columns []string, err error) {
	if in, err = parseDelimiter(f.delimiter); err != nil {
		return 0, 0, nil, usageErrorf("--delimiter: %v", err)
	}
	if out, err = parseDelimiter(f.outDelimiter); err != nil {
		return 0, 0, nil, usageErrorf("--out-delimiter: %v", err)
	}
	if cmd.Flags().Changed("columns") && len(f.columns) == 0 {
		return 0, 0, nil, usageErrorf("--columns: name the input's columns, comma-separated")
	}
	for i, c := range f.columns {
		if strings.TrimSpace(c) == "" {
			return 0, 0, nil, usageErrorf("--columns: column %d has no name", i+1)
		}
	}
	return in, out, f.columns, nil
}

// parseDelimiter reads a separator: a name (tab, comma, semicolon, pipe,
// space), the escape \t, or one ASCII character. "" is 0: the default.
func parseDelimiter(s string) (byte, error) {
	switch strings.ToLower(s) {
	case "":
		return 0, nil
	case "tab", `\t`:
		return '\t', nil
	case "comma":
		return ',', nil
	case "semicolon":
		return ';', nil
	case "pipe":
		return '|', nil
	case "space":
		return ' ', nil
	}
	if len(s) != 1 || s[0] >= 0x80 {
		return 0, fmt.Errorf("%q: give one ASCII character, or tab, comma, semicolon, pipe or space", s)
	}
	switch s[0] {
	case '"', '\n', '\r':
		return 0, fmt.Errorf("%q cannot separate CSV fields: quotes and line ends are part of CSV itself", s)
	}
	return s[0], nil
}
