package resolver

import (
	"errors"
	"fmt"
)

// FieldError reports an invalid configuration value. Field is the YAML key
// path below the stage's own section ("upstreams[1]", "prefetch.amount"); the
// server prefixes the section and resolves the path to a line in the file.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// FieldErrorf returns a *FieldError for field with a formatted message.
func FieldErrorf(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// Prefix returns err with its FieldError path (if any) placed below prefix,
// so nested validators can report full paths.
func Prefix(prefix string, err error) error {
	if err == nil {
		return nil
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		f := prefix
		if fe.Field != "" {
			if fe.Field[0] == '[' {
				f += fe.Field
			} else {
				f += "." + fe.Field
			}
		}
		return &FieldError{Field: f, Err: fe.Err}
	}
	return &FieldError{Field: prefix, Err: err}
}
