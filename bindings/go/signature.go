package moduvex

/*
#include "glue.h"
*/
import "C"

import (
	"fmt"
	"math"
	"reflect"
	"runtime"
	"unsafe"
)

// Func is the address of a C function, from Lookup or FuncOf.
type Func struct {
	p unsafe.Pointer
}

// FuncOf wraps a C function pointer (for example C.some_function from your own cgo code).
func FuncOf(p unsafe.Pointer) Func { return Func{p} }

// Pointer is the function's address.
func (f Func) Pointer() unsafe.Pointer { return f.p }

// Lookup finds symbol in the shared library lib with dlopen and dlsym ("libm.so.6", "cos"); lib
// "" searches the program and the libraries it loaded. The library stays loaded for the life of
// the process. Errors (ErrInvalid) carry dlerror()'s text.
func Lookup(lib, symbol string) (Func, error) {
	var clib *C.char
	if lib != "" {
		clib = C.CString(lib)
		defer C.free(unsafe.Pointer(clib))
	}
	csym := C.CString(symbol)
	defer C.free(unsafe.Pointer(csym))
	r := C.gomvx_lookup(clib, csym)
	if r.rc != 0 {
		return Func{}, errOf("Lookup", r)
	}
	return Func{r.p}, nil
}

type kind uint8

const (
	kVoid kind = iota
	kI8
	kU8
	kI16
	kU16
	kI32
	kU32
	kI64
	kU64
	kSize
	kF32
	kF64
	kPtr
	kStruct
)

var kindNames = map[string]kind{
	"void": kVoid, "i8": kI8, "u8": kU8, "i16": kI16, "u16": kU16, "i32": kI32, "u32": kU32,
	"i64": kI64, "u64": kU64, "size": kSize, "f32": kF32, "f64": kF64, "ptr": kPtr,
}

// ctype is one type of the signature language with its C layout on this platform.
type ctype struct {
	kind        kind
	size, align uintptr
	fields      []ctype
	offsets     []uintptr
}

func scalar(k kind) ctype {
	sizes := [...]uintptr{kVoid: 0, kI8: 1, kU8: 1, kI16: 2, kU16: 2, kI32: 4, kU32: 4, kI64: 8,
		kU64: 8, kSize: unsafe.Sizeof(uintptr(0)), kF32: 4, kF64: 8, kPtr: unsafe.Sizeof(uintptr(0))}
	s := sizes[k]
	a := s
	if a == 0 {
		a = 1
	}
	return ctype{kind: k, size: s, align: a}
}

func alignUp(n, a uintptr) uintptr { return (n + a - 1) &^ (a - 1) }

// Signature is a parsed C function type ("f64(f64)"), shared by any number of calls and
// goroutines. Its C side is released by a finalizer.
type Signature struct {
	text    string
	c       *C.mvx_signature
	ret     ctype
	args    []ctype
	offsets []uint32 // where each argument sits in the packed block handed to C
	block   uintptr
}

// ParseSignature parses the library's signature language (see moduvex.h: "i32(ptr,u64)",
// "{i32,f64}(ptr,{u8,u8})", ...). Errors are ErrInvalid with the library's message saying where
// and what was expected.
func ParseSignature(s string) (*Signature, error) {
	var r C.gomvx_res
	if len(s) == 0 {
		r = C.gomvx_signature_parse(nil, 0)
	} else {
		cs := C.CString(s)
		r = C.gomvx_signature_parse(cs, C.size_t(len(s)))
		C.free(unsafe.Pointer(cs))
	}
	if r.rc != 0 {
		return nil, errOf("ParseSignature", r)
	}
	sig := &Signature{text: s, c: (*C.mvx_signature)(r.p)}
	runtime.SetFinalizer(sig, func(sig *Signature) { C.mvx_signature_release(sig.c) })
	// The library accepted it; our own reading gives the types to check Go values against.
	p := sigParser{s: s}
	ret, args, ok := p.signature()
	if !ok || len(args) != int(r.outcome) || ret.size != uintptr(r.n) {
		return nil, invalid("ParseSignature", "%q: the binding reads it differently from the library", s)
	}
	sig.ret, sig.args = ret, args
	off := uintptr(0)
	for _, a := range args {
		off = alignUp(off, 8)
		sig.offsets = append(sig.offsets, uint32(off))
		off += a.size
	}
	sig.block = off
	return sig, nil
}

// String is the text the signature was parsed from.
func (s *Signature) String() string { return s.text }

// NumArgs is the number of arguments.
func (s *Signature) NumArgs() int { return len(s.args) }

// ReturnSize is the size in bytes of the return value (a call's output).
func (s *Signature) ReturnSize() int { return int(s.ret.size) }

// sigParser reads the grammar of moduvex.h; the library has already validated the text.
type sigParser struct {
	s string
	i int
}

func (p *sigParser) skip() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *sigParser) eat(c byte) bool {
	p.skip()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *sigParser) typ(depth int) (ctype, bool) {
	if depth > 8 {
		return ctype{}, false
	}
	if p.eat('{') {
		t := ctype{kind: kStruct, align: 1}
		for {
			f, ok := p.typ(depth + 1)
			if !ok || f.kind == kVoid {
				return ctype{}, false
			}
			off := alignUp(t.size, f.align)
			t.fields = append(t.fields, f)
			t.offsets = append(t.offsets, off)
			t.size = off + f.size
			if f.align > t.align {
				t.align = f.align
			}
			if p.eat('}') {
				break
			}
			if !p.eat(',') {
				return ctype{}, false
			}
		}
		t.size = alignUp(t.size, t.align)
		return t, true
	}
	p.skip()
	j := p.i
	for j < len(p.s) && (p.s[j] >= 'a' && p.s[j] <= 'z' || p.s[j] >= '0' && p.s[j] <= '9') {
		j++
	}
	k, ok := kindNames[p.s[p.i:j]]
	p.i = j
	return scalar(k), ok
}

func (p *sigParser) signature() (ctype, []ctype, bool) {
	ret, ok := p.typ(0)
	if !ok || !p.eat('(') {
		return ctype{}, nil, false
	}
	var args []ctype
	if !p.eat(')') {
		for {
			a, ok := p.typ(0)
			if !ok {
				return ctype{}, nil, false
			}
			if a.kind != kVoid {
				args = append(args, a)
			} else if len(args) > 0 {
				return ctype{}, nil, false
			}
			if p.eat(')') {
				break
			}
			if !p.eat(',') {
				return ctype{}, nil, false
			}
		}
	}
	p.skip()
	return ret, args, p.i == len(p.s)
}

var typeNames = [...]string{kVoid: "void", kI8: "i8", kU8: "u8", kI16: "i16", kU16: "u16",
	kI32: "i32", kU32: "u32", kI64: "i64", kU64: "u64", kSize: "size", kF32: "f32", kF64: "f64",
	kPtr: "ptr", kStruct: "struct"}

// marshal packs args into the block C copies at spawn. Pointers travel as integers: C keeps
// them, so they must not point into Go memory (the garbage collector would not see C's copy).
// buf holds at least s.block bytes, zeroed.
func (s *Signature) marshal(op string, args []any, buf []byte) error {
	if len(args) != len(s.args) {
		return invalid(op, "signature %q takes %d arguments, got %d", s.text, len(s.args), len(args))
	}
	for i, a := range args {
		if err := put(buf[s.offsets[i]:], &s.args[i], a); err != nil {
			return invalid(op, "argument %d of %q: %s", i, s.text, err.msg)
		}
	}
	return nil
}

type argError struct{ msg string }

func put(b []byte, t *ctype, v any) *argError {
	switch t.kind {
	case kF32, kF64:
		var f float64
		switch x := v.(type) {
		case float64:
			f = x
		case float32:
			f = float64(x)
		default:
			return putReflect(b, t, v)
		}
		if t.kind == kF32 {
			*(*float32)(unsafe.Pointer(&b[0])) = float32(f)
		} else {
			*(*float64)(unsafe.Pointer(&b[0])) = f
		}
		return nil
	case kPtr:
		var p uintptr
		switch x := v.(type) {
		case nil:
		case unsafe.Pointer:
			p = uintptr(x)
		case uintptr:
			p = x
		case Func:
			p = uintptr(x.p)
		default:
			return putReflect(b, t, v)
		}
		*(*uintptr)(unsafe.Pointer(&b[0])) = p
		return nil
	case kStruct:
		return putReflect(b, t, v)
	}
	var n int64
	var u uint64
	neg := false
	switch x := v.(type) {
	case int:
		n = int64(x)
	case int8:
		n = int64(x)
	case int16:
		n = int64(x)
	case int32:
		n = int64(x)
	case int64:
		n = x
	case uint:
		u = uint64(x)
	case uint8:
		u = uint64(x)
	case uint16:
		u = uint64(x)
	case uint32:
		u = uint64(x)
	case uint64:
		u = x
	case uintptr:
		u = uint64(x)
	default:
		return putReflect(b, t, v)
	}
	if n < 0 {
		neg = true
	} else if n > 0 {
		u = uint64(n)
	}
	return putInt(b, t, neg, n, u)
}

// putInt stores an integer (n if neg, else u) after checking that the C type holds it.
func putInt(b []byte, t *ctype, neg bool, n int64, u uint64) *argError {
	bits := t.size * 8
	signed := t.kind == kI8 || t.kind == kI16 || t.kind == kI32 || t.kind == kI64
	var ok bool
	if neg {
		ok = signed && (bits == 64 || n >= -1<<(bits-1))
	} else if signed {
		ok = u <= uint64(math.MaxInt64)>>(64-bits)
	} else {
		ok = bits == 64 || u < 1<<bits
	}
	if !ok {
		val := any(u)
		if neg {
			val = n
		}
		return &argError{"the value " + fmtAny(val) + " does not fit a " + typeNames[t.kind]}
	}
	x := u
	if neg {
		x = uint64(n)
	}
	switch t.size {
	case 1:
		b[0] = byte(x)
	case 2:
		*(*uint16)(unsafe.Pointer(&b[0])) = uint16(x)
	case 4:
		*(*uint32)(unsafe.Pointer(&b[0])) = uint32(x)
	default:
		*(*uint64)(unsafe.Pointer(&b[0])) = x
	}
	return nil
}

// putReflect handles named types (type Celsius float64), struct members, and structs.
func putReflect(b []byte, t *ctype, v any) *argError {
	if v == nil {
		return &argError{"a " + typeNames[t.kind] + " cannot take nil"}
	}
	return putValue(b, t, reflect.ValueOf(v))
}

func putValue(b []byte, t *ctype, rv reflect.Value) *argError {
	k := rv.Kind()
	wrong := &argError{"a " + typeNames[t.kind] + " cannot take a " + rv.Type().String()}
	switch t.kind {
	case kStruct:
		if k != reflect.Struct {
			return wrong
		}
		if rv.NumField() != len(t.fields) {
			return &argError{"the struct has " + fmtAny(len(t.fields)) + " members, " +
				rv.Type().String() + " has " + fmtAny(rv.NumField()) + " fields"}
		}
		for i := range t.fields {
			if err := putValue(b[t.offsets[i]:], &t.fields[i], rv.Field(i)); err != nil {
				return &argError{"member " + fmtAny(i) + ": " + err.msg}
			}
		}
		return nil
	case kF32, kF64:
		if k != reflect.Float32 && k != reflect.Float64 {
			return wrong
		}
		if t.kind == kF32 {
			*(*float32)(unsafe.Pointer(&b[0])) = float32(rv.Float())
		} else {
			*(*float64)(unsafe.Pointer(&b[0])) = rv.Float()
		}
		return nil
	case kPtr:
		switch {
		case k == reflect.UnsafePointer:
			*(*uintptr)(unsafe.Pointer(&b[0])) = rv.Pointer()
		case k == reflect.Uintptr:
			*(*uintptr)(unsafe.Pointer(&b[0])) = uintptr(rv.Uint())
		case rv.Type() == reflect.TypeOf(Func{}):
			*(*uintptr)(unsafe.Pointer(&b[0])) = uintptr(rv.Field(0).Pointer())
		default:
			return wrong
		}
		return nil
	}
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n := rv.Int()
		if n < 0 {
			return putInt(b, t, true, n, 0)
		}
		return putInt(b, t, false, 0, uint64(n))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return putInt(b, t, false, 0, rv.Uint())
	}
	return wrong
}

func fmtAny(v any) string { return fmt.Sprint(v) }
