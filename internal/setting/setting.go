// Package setting lets an adapter say which of its settings an error is
// about without naming a command-line flag: the error carries the name of
// the Config field, and the command that set it from a flag adds the
// flag's name.
package setting

import "fmt"

// Error is a setting that cannot be used. Name is the Config field; Err
// says what is wrong and how to fix it, in words that name no flag.
type Error struct {
	Name string
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error for the field name.
func Errorf(name, format string, args ...any) error {
	return &Error{Name: name, Err: fmt.Errorf(format, args...)}
}
