package asset

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
)

// inputName names an input asset partition in a materialization's
// Inputs: "key", "key[partition]", or "key[*]" for all partitions.
func inputName(key, part string) string {
	if part == "" {
		return key
	}
	return key + "[" + part + "]"
}

// provenance is the default data version: a hash of the code version and
// of the data versions of the inputs. Recomputing an asset with the same
// code from the same inputs gives the same data version, so nothing
// downstream of it becomes stale. An unversioned asset (no code version)
// hashes the run and partition instead: every materialization is new data.
func provenance(codeVersion, runID, part string, inputs map[string]string) string {
	h := sha256.New()
	if codeVersion != "" {
		h.Write([]byte("code\x00" + codeVersion + "\x00"))
	} else {
		h.Write([]byte("run\x00" + runID + "\x00" + part + "\x00"))
	}
	names := make([]string, 0, len(inputs))
	for k := range inputs {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		h.Write([]byte(k + "\x00" + inputs[k] + "\x00"))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// combined is the data version of all partitions of an asset at once: a
// hash of every partition's key and data version, so that a downstream
// asset records one version for them, not thousands.
func combined(parts []string, versions []string) string {
	h := sha256.New()
	for i, p := range parts {
		h.Write([]byte(p + "\x00" + versions[i] + "\x00"))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// shortVersion shortens a data version for people.
func shortVersion(v string) string {
	if len(v) > 12 && !strings.ContainsAny(v, " ") {
		return v[:12]
	}
	return v
}
