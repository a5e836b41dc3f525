// Calls cos from libm on a moduvex worker, then lets a C task join a goroutine.
package main

/*
#cgo pkg-config: moduvex
#include <moduvex.h>
#include <stdlib.h>

// A C task that joins another task (here a goroutine's) and outputs the length of its bytes.
// A Go task's output is struct { void *data; size_t len; }, malloc'd: the taker frees it.
typedef struct { void *data; size_t len; } go_bytes;

static int join_goroutine(void *state, mvx_context *cx, void *output)
{
    mvx_join_handle *goroutine = *(mvx_join_handle **)state;
    int rc = mvx_join_poll(goroutine, mvx_context_waker(cx));
    if (rc == MVX_EAGAIN)
        return MVX_POLL_PENDING; // polled again once the goroutine has finished
    go_bytes b = {0};
    if (rc == 0)
        rc = mvx_join_take(goroutine, &b, sizeof b, NULL);
    if (rc != 0) {
        mvx_context_fail(cx, rc, "the goroutine did not complete", NULL, NULL);
        return MVX_POLL_FAILED;
    }
    *(int64_t *)output = (int64_t)b.len;
    free(b.data);
    return MVX_POLL_READY;
}

static const mvx_task_vtable join_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = join_goroutine,
    .state_size = sizeof(void *),
    .state_align = _Alignof(void *),
    .output_size = sizeof(int64_t),
    .output_align = _Alignof(int64_t),
};

static void *spawn_joiner(void *rt, void *goroutine)
{
    mvx_join_handle *jh = NULL;
    mvx_spawn(rt, &join_vt, &goroutine, &jh);
    return jh;
}
*/
import "C"

import (
	"context"
	"fmt"
	"log"

	moduvex "moduvex/bindings/go"
)

func main() {
	rt, err := moduvex.New(moduvex.Workers(2))
	if err != nil {
		log.Fatal(err)
	}
	defer rt.Close()
	ctx := context.Background()

	// cos(0.5) from libm, run on a worker; the waiting goroutine holds no OS thread.
	cos, err := moduvex.Lookup("libm.so.6", "cos")
	if err != nil {
		log.Fatal(err)
	}
	sig, err := moduvex.ParseSignature("f64(f64)")
	if err != nil {
		log.Fatal(err)
	}
	h, err := rt.Call(ctx, cos, sig, 0.5)
	if err != nil {
		log.Fatal(err)
	}
	v, err := moduvex.Result[float64](ctx, h)
	h.Close()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("cos(0.5) = %.6f\n", v)

	// A goroutine behind a promise, joined by a C task.
	g, err := rt.Go(ctx, func(ctx context.Context) ([]byte, error) {
		return []byte("hello from Go"), nil
	})
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	j := rt.Adopt(C.spawn_joiner(rt.C(), g.C()))
	defer j.Close()
	n, err := moduvex.Result[int64](ctx, j)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("the C task joined the goroutine: %d bytes\n", n)
}
