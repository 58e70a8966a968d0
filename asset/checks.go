package asset

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// Check is a validation of an asset's value, run after each computation
// and recorded with the materialization. A check that fails is reported;
// a failed Blocking check also fails the asset, so that nothing downstream
// of it runs (a resumed run computes the asset again). Make checks with
// CheckOf, RowsAtLeast or NoNulls.
type Check struct {
	Name     string
	Blocking bool

	typ reflect.Type // the value type fn takes; nil for any
	fn  func(ctx context.Context, v checked) error
}

// checked is what a check looks at.
type checked struct {
	value any
	rows  int64 // -1 when unknown
}

// Block returns c as a blocking check.
func (c Check) Block() Check {
	c.Blocking = true
	return c
}

// CheckOf returns a check named name that calls fn with the value; a
// non-nil error fails it, with the error as the message. The asset's
// value must be a T (Validate checks).
func CheckOf[T any](name string, fn func(ctx context.Context, v T) error) Check {
	return Check{Name: name, typ: typeOf[T](), fn: func(ctx context.Context, v checked) error {
		return fn(ctx, as[T](v.value))
	}}
}

// RowsAtLeast checks that the value has at least n rows: the rows the
// compute function reported (Context.SetRows), else the length of a
// slice, array or map value.
func RowsAtLeast(n int64) Check {
	return Check{Name: fmt.Sprintf("rows >= %d", n), fn: func(_ context.Context, v checked) error {
		if v.rows < 0 {
			return errors.New("the number of rows is unknown (report it with Context.SetRows)")
		}
		if v.rows < n {
			return fmt.Errorf("%d %s, want at least %d", v.rows, plural(int(v.rows), "row", "rows"), n)
		}
		return nil
	}}
}

// NoNulls checks that no row of the value has a null in column. The value
// is a slice (or array) of rows; a row is a struct, whose column is the
// field of that name or JSON name, or a map from column name to value. A
// null is a nil pointer, interface, slice or map, a missing map entry, or
// an invalid sql.Null* (any driver.Valuer that gives nil).
func NoNulls(column string) Check {
	return Check{Name: "no nulls in " + column, fn: func(_ context.Context, v checked) error {
		rv := reflect.ValueOf(v.value)
		for rv.Kind() == reflect.Pointer && !rv.IsNil() {
			rv = rv.Elem()
		}
		if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
			return fmt.Errorf("the value is a %v, not a slice of rows", rv.Type())
		}
		nulls, first := 0, -1
		for i := 0; i < rv.Len(); i++ {
			cell, err := cellOf(rv.Index(i), column)
			if err != nil {
				return fmt.Errorf("row %d: %w", i, err)
			}
			if isNull(cell) {
				nulls++
				if first < 0 {
					first = i
				}
			}
		}
		if nulls > 0 {
			return fmt.Errorf("%d of %d rows %s a null %s (the first is row %d)", nulls, rv.Len(), plural(nulls, "has", "have"), column, first)
		}
		return nil
	}}
}

// cellOf returns the cell of row in column; an invalid Value stands for a
// missing map entry.
func cellOf(row reflect.Value, column string) (reflect.Value, error) {
	for row.Kind() == reflect.Pointer || row.Kind() == reflect.Interface {
		if row.IsNil() {
			return reflect.Value{}, nil
		}
		row = row.Elem()
	}
	switch row.Kind() {
	case reflect.Map:
		if row.Type().Key().Kind() != reflect.String {
			return reflect.Value{}, fmt.Errorf("a row map must have string keys, not %v", row.Type().Key())
		}
		return row.MapIndex(reflect.ValueOf(column).Convert(row.Type().Key())), nil
	case reflect.Struct:
		t := row.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if f.IsExported() && (f.Name == column || name == column) {
				return row.Field(i), nil
			}
		}
		return reflect.Value{}, fmt.Errorf("%v has no column %q", t, column)
	}
	return reflect.Value{}, fmt.Errorf("a row is a %v, not a struct or a map", row.Type())
}

func isNull(v reflect.Value) bool {
	if !v.IsValid() {
		return true
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice:
		if v.IsNil() {
			return true
		}
	}
	if v.CanInterface() {
		switch x := v.Interface().(type) {
		case driver.Valuer:
			val, err := x.Value()
			return err == nil && val == nil
		case json.RawMessage:
			return string(x) == "null"
		}
	}
	if v.Kind() == reflect.Interface {
		return isNull(v.Elem())
	}
	return false
}
