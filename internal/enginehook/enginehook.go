// Package enginehook carries functions of package ckpt that only ckpt's
// own packages may call. Package ckpt sets the variables in its init
// function, before any package that imports ckpt is initialized; nothing
// else writes them. Typed wrappers are in package internal/value: call
// those, not these.
//
// The variables are typed any because this package cannot name ckpt's
// types (ckpt imports it).
package enginehook

var (
	// SaveValue is ckpt's saveValue.
	SaveValue any
	// LoadValue is ckpt's loadValue.
	LoadValue any
)
