/*
 * task-state.pml - a Promela model (for spin) of one task's state word, src/task.h.
 *
 * It follows the real transitions of src/task.c and src/join.c: each atomic read-modify-write
 * (or CAS loop, whose decision is recomputed from the value it finally swaps) is one `atomic`
 * step here, and the plain steps between them (a load before a CAS, the queue push after a
 * wake's CAS, the join waker slot written while JOIN_WAKER is clear) are separate steps, so
 * that spin interleaves the other actors there. THE MODEL MUST CHANGE WITH THE CODE: a change to
 * a transition in task.c or join.c is a change here, then `make model`.
 *
 * Actors, each its own process:
 *   poller   pops the task from its queue and runs mvx__task_run: start (SCHEDULED -> RUNNING or
 *            cancel), poll (may clone a waker for `waker`, may wake itself), then complete or
 *            transition_after_pending, finish().
 *   waker    holds the waker the poll cloned: wake_by_ref up to twice, then wake (by value) or
 *            drop: mvx__task_wake_by_ref / wake_by_val / ref_dec, resurrect_for_cancel.
 *   aborter  mvx_join_abort -> mvx__task_request_cancel (returns before release: the header's
 *            rule for abort and release).
 *   joiner   the join handle: mvx_join_poll (registering a waker, then perhaps a second one: the
 *            JOIN_WAKER handshake) or mvx_join_wait (JOIN_BLOCKED and the futex), mvx_join_take,
 *            mvx_join_release; or released at once (detaching the task).
 * Configurations (see Makefile.am, `make model`): -DNO_JOIN (detached from spawn: poller and
 * waker only), -DNO_ABORT, and -DBUG_NO_NOTIFIED, a known bug (transition_after_pending ignores
 * NOTIFIED) that spin must find: the negative self-test.
 *
 * Checked: the state is dropped exactly once; one outcome (terminal at most once, and what the
 * joiner sees never changes); an output is dropped or taken exactly once; a wake after the
 * start of a poll always leads to another poll (the monitor: never IDLE with a wake pending);
 * the refcount never underflows; the task is freed exactly once, only with no reference left,
 * and never touched after; the join waker slot is never read while written; every registered
 * join waker is woken or dropped, no join waiter sleeps forever, nothing leaks (a process
 * stuck forever is an invalid end state).
 */

#define IDLE      0
#define SCHEDULED 1
#define RUNNING   2
#define COMPLETE  3
#define CANCELLED 4
#define TERMINAL  (life >= COMPLETE)

#ifndef MAXPOLLS
#define MAXPOLLS 2 /* the poll returns READY at the latest on this poll */
#endif

/* ---- the state word (bits of task.h) ---- */
byte life = SCHEDULED;
bool notified, cancel, join, join_waker, join_blocked;
byte refs;
/* The low 32 bits, the futex mvx_join_wait sleeps on. */
#define LOW (life + 8 * notified + 16 * cancel + 32 * join + 64 * join_waker + 128 * join_blocked)

/* ---- what the model observes ---- */
byte queued;          /* queue entries (each holds a reference) */
bool freed;           /* mvx__task_dealloc ran */
byte state_drops;     /* the vtable's drop */
byte outcome_drops;   /* output_drop (or the failure record freed) */
bool taken;           /* mvx_join_take moved the output out */
byte terminal_count;  /* moves to COMPLETE or CANCELLED */
bool wake_pending;    /* woken since the current poll started (cleared when a poll starts) */
bool waker_given;     /* the poll cloned its waker for the waker process */
bool slot_writing;    /* the join handle is writing join_waker (JOIN_WAKER clear) */
byte jw_refs;         /* clones of the joiner's foreign waker held in join_waker */
bool jw_woken;        /* the join waker was woken */
bool futex_sleeping;  /* the joiner sleeps in futex_wait */
bool aborted_done = true;

/* ---- shared steps ---- */

inline drop_state()
{
    atomic { assert(!freed); state_drops++; assert(state_drops == 1) }
}

inline drop_outcome()
{
    atomic { assert(!freed); outcome_drops++; assert(outcome_drops + taken <= 1) }
}

/* mvx__task_dealloc: the last reference is gone. */
inline dealloc()
{
    atomic {
        assert(!freed && refs == 0 && queued == 0);
        freed = true;
        if
        :: join_waker -> assert(jw_refs > 0); jw_refs-- /* mvx_waker_drop(&t->join_waker) */
        :: else -> skip
        fi
    }
}

/* mvx__task_ref_dec, with resurrect_for_cancel for an unfinished task (then once more). */
inline ref_dec()
{
    rd_again = true;
    do
    :: rd_again ->
        atomic {
            assert(!freed && refs > 0);
            refs--;
            rd_last = (refs == 0);
            rd_terminal = TERMINAL
        }
        rd_again = false;
        if
        :: rd_last && rd_terminal -> dealloc()
        :: rd_last && !rd_terminal ->
            /* resurrect_for_cancel: refs is 0, nobody else can touch the word */
            atomic { assert(life == IDLE); life = SCHEDULED; cancel = true; refs = 2 }
            queued++; /* mvx__schedule */
            rd_again = true
        :: else -> skip
        fi
    :: else -> break
    od
}

/* mvx__task_wake_by_ref */
inline wake_by_ref()
{
    atomic {
        assert(!freed);
        wk_sched = false;
        if
        :: life == IDLE -> life = SCHEDULED; refs++; wk_sched = true; wake_pending = true
        :: life == RUNNING -> notified = true; wake_pending = true
        :: life == SCHEDULED -> wake_pending = true
        :: else -> skip /* finished */
        fi
    }
    if
    :: wk_sched -> queued++ /* mvx__schedule, after the CAS */
    :: else -> skip
    fi
}

/* mvx__task_request_cancel */
inline request_cancel()
{
    atomic {
        assert(!freed);
        rc_sched = false;
        if
        :: TERMINAL || cancel -> skip
        :: else ->
            cancel = true;
            if
            :: life == IDLE -> life = SCHEDULED; refs++; rc_sched = true
            :: else -> skip
            fi
        fi
    }
    if
    :: rc_sched -> queued++
    :: else -> skip
    fi
}

/* ---- the poller: mvx__task_run ---- */

/* finish(t, lifecycle, failed) for a task whose state this thread owns, after drop_state. */
inline finish(L)
{
    atomic { assert(!freed); f_join = join } /* the load before the CAS loop */
    f_dropped = false;
    if
    :: L == COMPLETE && !f_join -> drop_outcome(); f_dropped = true /* never a handle now */
    :: else -> skip
    fi
    atomic {
        assert(!freed && !TERMINAL);
        terminal_count++;
        assert(terminal_count == 1);
        f_jw = join_waker;
        f_jb = join_blocked;
        life = L;
        notified = false;
        f_drop_after = (L == COMPLETE && !f_dropped && !join);
        f_keep = f_jw || f_jb || f_drop_after;
        if
        :: !f_keep -> assert(refs > 0); refs--
        :: else -> skip
        fi;
        f_refs = refs
    }
    if
    :: f_drop_after -> drop_outcome()
    :: else -> skip
    fi;
    /* notify_joiner(t, cur) */
    if
    :: f_jw -> atomic { assert(!freed && !slot_writing && jw_refs > 0); jw_woken = true }
    :: else -> skip
    fi;
    if
    :: f_jb -> futex_sleeping = false /* futex_wake */
    :: else -> skip
    fi;
    if
    :: f_keep -> ref_dec()
    :: !f_keep && f_refs == 0 -> dealloc()
    :: else -> skip /* not ours any more: not touched again */
    fi
}

proctype poller()
{
    bool started_cancel, pending, ap_cancel, ap_yield;
    bool f_join, f_dropped, f_jw, f_jb, f_drop_after, f_keep;
    byte f_refs, polls;
    bool rd_again, rd_last, rd_terminal, wk_sched;
    do
    :: atomic { queued > 0 -> queued--; assert(!freed) } /* pop: we hold the queue's reference */
        /* start_and_poll: fetch_add(RUNNING - SCHEDULED) */
        atomic {
            assert(!freed && life == SCHEDULED && !notified);
            life = RUNNING;
            started_cancel = cancel;
            if
            :: !cancel -> wake_pending = false; polls++
            :: else -> skip
            fi
        }
        if
        :: started_cancel -> drop_state(); finish(CANCELLED) /* mvx__task_cancel_popped */
        :: else ->
            /* the poll: may hand a clone of its waker to the waker process, may wake itself */
            if
            :: !waker_given -> atomic { assert(!freed); refs++; waker_given = true }
            :: skip
            fi;
            if
            :: wake_by_ref() /* a yield: mvx_waker_wake_by_ref(mvx_context_waker(cx)) */
            :: skip
            fi;
            if
            :: polls < MAXPOLLS -> pending = true
            :: pending = false /* MVX_POLL_READY (FAILED takes the same transitions) */
            fi;
            if
            :: !pending -> drop_state(); finish(COMPLETE)
            :: pending ->
                /* transition_after_pending */
                atomic {
                    assert(!freed && life == RUNNING);
                    ap_cancel = false;
                    ap_yield = false;
                    if
                    :: cancel -> ap_cancel = true /* still RUNNING: we own the state */
#ifndef BUG_NO_NOTIFIED
                    :: !cancel && notified -> notified = false; life = SCHEDULED; ap_yield = true
                    :: !cancel && !notified && refs == 1 -> ap_cancel = true
                    :: !cancel && !notified && refs > 1 -> life = IDLE; refs--
#else
                    :: !cancel && refs == 1 -> ap_cancel = true
                    :: !cancel && refs > 1 -> notified = false; life = IDLE; refs--
#endif
                    fi
                }
                if
                :: ap_cancel -> drop_state(); finish(CANCELLED)
                :: ap_yield -> queued++ /* mvx__schedule(t, true) */
                :: else -> skip
                fi
            fi
        fi
    :: atomic { freed && queued == 0 -> break }
    od
}

/* ---- the waker the poll cloned ---- */

proctype waker()
{
    bool rd_again, rd_last, rd_terminal, wk_sched;
    byte n;
    if
    :: waker_given ->
        do
        :: n < 2 -> wake_by_ref(); n++
        :: break
        od;
        if
        :: wake_by_ref(); ref_dec() /* mvx__task_wake_by_val */
        :: ref_dec()                /* mvx_waker_drop */
        fi
    :: freed && !waker_given -> skip /* the poll never gave one out */
    fi
}

/* ---- the join handle ---- */

proctype aborter()
{
    bool rc_sched;
    request_cancel();
    aborted_done = true
}

/* Only the join handle's reference is left on an idle task and no abort is coming: nothing can
 * finish it until the handle is released, so a waiter that never times out would hang (the
 * application's bug, not the runtime's). The model lets such a waiter time out. */
#define HOPELESS (refs == 1 && life == IDLE && aborted_done)

/* What the joiner sees never changes once finished. */
inline observe()
{
    atomic {
        if
        :: TERMINAL && seen == 0 -> seen = life
        :: TERMINAL && seen != 0 -> assert(seen == life)
        :: else -> skip
        fi
    }
}

/* mvx_join_poll with the joiner's foreign waker. */
inline join_poll()
{
    atomic { assert(!freed); jp_cur_terminal = TERMINAL; jp_cur_jw = join_waker }
    jp_pending = false;
    if
    :: jp_cur_terminal -> skip
    :: else ->
        jp_ok = true;
        if
        :: jp_cur_jw ->
            /* a different waker: take_back_waker_slot, then drop the old one */
            atomic {
                if
                :: TERMINAL -> jp_ok = false
                :: else -> join_waker = false; slot_writing = true
                fi
            }
            if
            :: jp_ok -> jw_refs--; slot_writing = false
            :: else -> skip
            fi
        :: else -> skip
        fi;
        if
        :: jp_ok ->
            atomic { assert(!join_waker); slot_writing = true; jw_refs++ } /* mvx_waker_clone */
            slot_writing = false;
            atomic {
                if
                :: TERMINAL -> jp_ok = false
                :: else -> join_waker = true; jp_pending = true
                fi
            }
            if
            :: !jp_ok -> jw_refs-- /* never published: still ours, dropped */
            :: else -> skip
            fi
        :: else -> skip
        fi
    fi
}

/* mvx_join_wait with an infinite timeout, after its spin: JOIN_BLOCKED and the futex. */
inline join_wait()
{
    atomic {
        assert(!freed);
        if
        :: TERMINAL -> jw_done = true
        :: else -> join_blocked = true; jw_done = false
        fi
    }
    do
    :: jw_done -> break
    :: !jw_done ->
        atomic {
            assert(!freed);
            if
            :: TERMINAL -> jw_done = true
            :: else -> jw_val = LOW
            fi
        }
        if
        :: !jw_done ->
            /* futex_wait(word, val): sleeps only if the word still holds val */
            atomic {
                if
                :: LOW == jw_val -> futex_sleeping = true
                :: else -> skip
                fi
            }
            if
            :: !futex_sleeping -> skip
            :: atomic { futex_sleeping && HOPELESS -> futex_sleeping = false }
                /* only a timeout ends this wait: clear JOIN_BLOCKED unless finished */
                atomic {
                    assert(!freed);
                    if
                    :: !TERMINAL -> join_blocked = false
                    :: else -> skip
                    fi
                }
                jw_done = true
            fi
        :: else -> skip
        fi
    od
}

/* mvx_join_release */
inline join_release()
{
    atomic { assert(!freed); jr_jw = join_waker }
    if
    :: jr_jw ->
        atomic {
            if
            :: !TERMINAL -> join_waker = false; slot_writing = true; jr_took = true
            :: else -> jr_took = false
            fi
        }
        if
        :: jr_took -> jw_refs--; slot_writing = false
        :: else -> skip
        fi
    :: else -> skip
    fi;
    atomic {
        assert(!freed && join);
        jr_terminal = TERMINAL;
        jr_sched = false;
        if
        :: jr_terminal -> skip
        :: !jr_terminal && refs > 1 -> join = false; refs--
        :: !jr_terminal && refs == 1 ->
            /* the last reference, so an idle task: cancel it through a schedule */
            assert(life == IDLE);
            join = false; life = SCHEDULED; cancel = true; refs++;
            jr_sched = true
        fi
    }
    if
    :: jr_terminal ->
        if
        :: life == COMPLETE && !taken -> drop_outcome()
        :: else -> skip
        fi;
        /* mvx__task_ref_dec_flags(t, JOIN) */
        atomic { assert(!freed && refs > 0); refs--; join = false; jr_last = (refs == 0) }
        if
        :: jr_last -> dealloc()
        :: else -> skip
        fi
    :: jr_sched -> queued++; ref_dec()
    :: else -> skip
    fi
}

proctype joiner()
{
    bool jp_cur_terminal, jp_cur_jw, jp_pending, jp_ok, jw_done;
    bool jr_jw, jr_took, jr_terminal, jr_sched, jr_last;
    bool rd_again, rd_last, rd_terminal;
    byte jw_val, seen;
    if
    :: join_poll(); observe();
        if
        :: jp_pending -> join_poll(); observe() /* a second registration (a new waker) */
        :: skip
        fi;
        if
        :: jp_pending ->
            if
            :: jw_woken -> atomic { assert(!freed && TERMINAL) }; observe()
            :: HOPELESS -> skip /* gives up waiting, as an application would time out */
            fi
        :: else -> skip
        fi
    :: join_wait(); observe()
    :: skip /* released at once: detached */
    fi;
    /* mvx_join_take */
    atomic {
        assert(!freed);
        if
        :: life == COMPLETE && !taken -> taken = true; assert(outcome_drops == 0)
        :: else -> skip
        fi
    }
    aborted_done; /* every abort returns before release */
    join_release()
}

/* A wake after the start of a poll leads to another poll: the task never rests IDLE with one. */
active proctype monitor()
{
end:
    atomic { (wake_pending && life == IDLE && !freed) -> assert(false) }
}

init
{
    atomic {
        refs = 1; /* the queue's */
        queued = 1;
#ifndef NO_JOIN
        join = true;
        refs++;
#endif
        run poller();
        run waker();
#ifndef NO_JOIN
        run joiner();
#ifndef NO_ABORT
        aborted_done = false;
        run aborter();
#endif
#endif
    }
    (_nr_pr == 2); /* init and the monitor are left */
    assert(freed && state_drops == 1 && queued == 0 && terminal_count == 1 && jw_refs == 0);
    assert(life != COMPLETE || outcome_drops + taken == 1);
    assert(life == COMPLETE || outcome_drops + taken == 0);
    assert(!futex_sleeping)
}
