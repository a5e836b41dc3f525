package moduvex

/*
#include "glue.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// The library's error codes (MVX_E* in moduvex.h). They never change.
const (
	codeEINVAL     = -1
	codeENOMEM     = -2
	codeESHUTDOWN  = -3
	codeETIMEDOUT  = -5
	codeEAGAIN     = -6
	codeECANCELLED = -7
	codeEFAILED    = -8
	codeETAKEN     = -9
)

// Error is a failed library call: Op names the binding's operation ("Call", "New"), Code is the
// library's MVX_E* code and Msg the library's mvx_last_error() text, read in the same C call
// that failed. Match the kind with errors.Is(err, ErrInvalid) and so on.
type Error struct {
	Op   string
	Code int
	Msg  string

	sentinel bool
}

func (e *Error) Error() string {
	name := C.GoString(C.mvx_err_name(C.int(e.Code)))
	switch {
	case e.sentinel:
		return "moduvex: " + e.Msg
	case e.Msg == "":
		return fmt.Sprintf("moduvex: %s: %s", e.Op, name)
	default:
		return fmt.Sprintf("moduvex: %s: %s (%s)", e.Op, e.Msg, name)
	}
}

// Is matches the sentinels by code: errors.Is(&Error{Code: -1, ...}, ErrInvalid) is true.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.sentinel && t.Code == e.Code
}

// The sentinel errors, matched with errors.Is.
var (
	ErrInvalid   error = &Error{Code: codeEINVAL, Msg: "invalid argument", sentinel: true}
	ErrShutdown  error = &Error{Code: codeESHUTDOWN, Msg: "runtime is shut down", sentinel: true}
	ErrTimeout   error = &Error{Code: codeETIMEDOUT, Msg: "timed out", sentinel: true}
	ErrCancelled error = &Error{Code: codeECANCELLED, Msg: "task was cancelled", sentinel: true}
)

// TaskError is a task's failure: a C task's mvx_context_fail (Code, Msg), or a Runtime.Go
// function that returned an error or panicked. For those Value is the error returned or the
// value the panic was started with (recover()'s result); it is nil for failures made in C.
type TaskError struct {
	Code  int
	Msg   string
	Value any
	// Panicked says Value came from a panic rather than a returned error.
	Panicked bool
}

func (e *TaskError) Error() string {
	if e.Panicked {
		return fmt.Sprintf("moduvex: task panicked: %v", e.Value)
	}
	return "moduvex: task failed: " + e.Msg
}

// Unwrap gives the error a Runtime.Go function returned (or panicked with), so that errors.Is
// and errors.As see through the task.
func (e *TaskError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// errOf turns a failed helper result into an error and frees its message.
func errOf(op string, r C.gomvx_res) error {
	msg := ""
	if r.msg != nil {
		msg = C.GoString(r.msg)
		C.free(unsafe.Pointer(r.msg))
	}
	return &Error{Op: op, Code: int(r.rc), Msg: msg}
}

func invalid(op, format string, args ...any) error {
	return &Error{Op: op, Code: codeEINVAL, Msg: fmt.Sprintf(format, args...)}
}
