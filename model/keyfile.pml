/*
 * valguard, key-file (restart) sign mode: the hand-over protocol.
 *
 * Two replicas, each a supervisor (with its renew loop and its deadline
 * fence) and a node; one Consul (TTL sessions, the lock key with its
 * clean-release marker, lock-delay, the published watermark); a chain that
 * commits heights; a clock of discrete ticks. Time is relative: every
 * deadline is a count of ticks left and every message or session carries
 * its age, all saturating, so the state space is finite and runs are not
 * bounded in time. See README.md for the mapping of each step to the Go
 * code and for what is abstracted away.
 *
 * Mutants (one at a time, -D on the spin command line); each must fail:
 *   MUT_RELEASE_FIRST  release the lock before the node is stopped and reaped
 *   MUT_NO_RAISE       start the validator without raising its sign state
 *   MUT_RECV_DEADLINE  local deadline from the time the renew answer arrived
 *   MUT_NO_MARKER      treat every free lock key as cleanly released
 *   MUT_NO_FINAL_ON_LOSS  the lease-lost release carries no final watermark
 *                      (finding F1 in README.md, fixed in the code: the
 *                      release writes the clean marker, so the standby
 *                      raises its state from an older publish)
 * Scenario switches:
 *   DELKEY             an operator may delete the lock key (once)
 *   NO_NODE_DEATH      validator nodes do not die on their own
 *   MAXH, MAXCRASH     heights that can be signed (2), replica crashes (1)
 *   LIVENESS           replica 0 crashes for good while validating; no loss,
 *                      no step-down, renews timely (partial synchrony);
 *                      check with -a -f (weak fairness)
 */

#ifndef TTL
#define TTL     3   /* session TTL, in ticks */
#endif
#define MARGIN  1   /* stop margin: the deadline is send time + TTL - MARGIN */
#define RI      1   /* renew interval */
#ifndef LD
#define LD      TTL /* lock-delay (default: the TTL) */
#endif
#define WAIT    (LD > TTL -> LD : TTL) /* unclean-takeover wait: max(LD, TTL) */
#ifndef MAXH
#define MAXH    2
#endif
/* MAXH: heights 1..MAXH can be signed; the chain commits up to MAXH-1 */
#ifndef MAXCRASH
#define MAXCRASH 1  /* replica crashes over a run */
#endif

/* supervisor phases */
#define P_DOWN   0  /* crashed: supervisor and node gone */
#define P_START  1  /* Startup..Registering: key unlinked, voter node, new session */
#define P_VOTE   2  /* Voting: holds a session, tries to take the lock */
#define P_WAIT   3  /* took the lock: unclean-takeover wait */
#define P_RAISE  4  /* promote: watermark read, voter stopped, raise the sign state */
#define P_STARTV 5  /* promote: start the validator under the fence */
#define P_VAL    6  /* Validating */
#define P_KILL   7  /* leaving: stop (kill) and reap the node */
#define P_REL    8  /* leaving: release the lock (Close) */
#define P_OUT    9  /* out of sessions for this bounded run: a voter */

/* Consul */
byte holder;              /* session holding the lock key: 0 none, else i+1 */
bool absent;              /* the lock key does not exist */
bool marker;              /* the free key carries a clean-release marker */
byte mage;                /* age of that marker (saturates at TTL+1) */
byte fage;                /* ticks since the key became free (saturates at WAIT) */
byte ldl;                 /* lock-delay left */
bool alive[4];            /* session i = 2*r + slot alive at the server */
byte sage[4];             /* ticks since the server last received a renew of i */
byte wm;                  /* published watermark (a height) */
bool deleted;             /* the operator deleted the key (DELKEY) */

/* chain and nodes */
byte chain;               /* committed height */
byte obs[2];              /* committed height the replica's node has seen */
bool nodeUp[2];           /* a node process runs (voter or validator) */
bool keyed[2];            /* that node has the validator key loaded */
byte st[2];               /* the replica's validator sign state (a height) */
byte signer[MAXH+1];      /* signer[h]: replica+1 whose node signed h; 0: none */

/* supervisors */
byte ph[2];
byte ses[2];              /* current session */
byte dl[2];               /* ticks left to the local lease deadline */
bool done[2];             /* Done closed by an answer (not by the deadline) */
bool held[2];             /* this session took the lock (s.held) */
byte wt[2];               /* unclean-takeover wait left */
bool clean[2];            /* Close may write the marker (the wait is over) */
byte rn[2];               /* ticks to the next renew */
bool waiting[2];          /* a renew call is outstanding */
bool final[2];            /* the release carries the final watermark */
byte ncrash;
byte k[2];                /* sessions created (at most 2 per replica) */
bool stepped;             /* the one voluntary step-down was taken */

/* network: the answer to a renew, one per replica (a renew request is
 * received by Consul when it is sent, or lost: see README.md) */
bool rpIn[2]; byte rpAge[2]; bool rpValid[2]; bool rpHeld[2];

#define lost(r)     (done[r] || dl[r] == 0)
#define fenceDue(r) (keyed[r] && dl[r] == 0)
#define expDue(i)   (alive[i] && sage[i] >= 2*TTL)
#ifdef LIVENESS
/* partial synchrony for the liveness check: a due renew is sent and its
 * answer handled within the tick */
#define renewDue(r) (ph[r] >= P_WAIT && ph[r] <= P_VAL && !lost(r) && !waiting[r] && rn[r] == 0)
#define timely      (!renewDue(0) && !renewDue(1) && !rpIn[0] && !rpIn[1])
#else
#define timely      1
#endif
#define tickOK      (!fenceDue(0) && !fenceDue(1) && timely && \
                     !expDue(0) && !expDue(1) && !expDue(2) && !expDue(3))

inline dec(x)      { if :: x > 0 -> x-- :: else fi }
inline inc(x, cap) { if :: x < cap -> x++ :: else fi }
inline maxTo(x, y) { if :: x < y -> x = y :: else fi }
/* a voter's session does not age: it renews (its expiry only sends the
 * voter back to Registering, which the model leaves out) */
inline ageS(i)     { if :: alive[i] && !(ph[i/2] == P_VOTE && ses[i/2] == i) -> inc(sage[i], 2*TTL) :: else fi }
inline ageR(r) {
	dec(dl[r]); dec(rn[r]); dec(wt[r]);
	if :: rpIn[r] -> inc(rpAge[r], TTL - MARGIN) :: else fi
}

/* The clock. A tick waits for what must happen within the tick: the
 * deadline fence's kill and reap, and Consul's expiry at 2xTTL. A running
 * node has seen every committed height by the next tick (within a tick
 * its view may lag). */
active proctype clock() {
end_clock:
	do
	:: atomic { tickOK -> d_step {
		if :: nodeUp[0] -> obs[0] = chain :: else fi;
		if :: nodeUp[1] -> obs[1] = chain :: else fi;
		ageR(0); ageR(1);
		ageS(0); ageS(1); ageS(2); ageS(3);
		if :: holder == 0 -> inc(fage, WAIT) :: else fi;
		if :: marker -> inc(mage, TTL + 1) :: else fi;
		dec(ldl) } }
	od
}

/* Consul: session expiry, any time from TTL to 2xTTL after the last renew
 * received, with lock-delay when the session held the lock. */
inline expire(i) {
	alive[i] = 0; sage[i] = 0;
	if
	:: holder == i + 1 -> holder = 0; fage = 0; ldl = LD
	:: else
	fi
}

/* Consul: a renew arrives. Its answer says whether the session is still
 * known and whether the lock is still held by it (the consistent read
 * that follows a holder's renew). */
inline serveRenew(r) {
	if
	:: alive[ses[r]] -> sage[ses[r]] = 0
	:: else
	fi;
	rpIn[r] = 1; rpAge[r] = 0;
	rpValid[r] = alive[ses[r]]; rpHeld[r] = (holder == ses[r] + 1)
}

active proctype consul() {
end_consul:
	do
	:: atomic { alive[0] && sage[0] >= TTL -> expire(0) }
	:: atomic { alive[1] && sage[1] >= TTL -> expire(1) }
	:: atomic { alive[2] && sage[2] >= TTL -> expire(2) }
	:: atomic { alive[3] && sage[3] >= TTL -> expire(3) }
#ifdef DELKEY
	:: atomic { !deleted && holder != 0 ->
		deleted = 1; holder = 0; absent = 1; marker = 0; mage = 0; fage = 0 }
#endif
	/* the chain: the other validators commit heights */
	:: atomic { chain < MAXH - 1 -> chain++ }
	od
}

/* the node signs the next height it sees, if its sign state allows */
inline sign(r) {
	st[r] = obs[r] + 1;
	assert(signer[st[r]] == 0 || signer[st[r]] == r + 1);  /* one signer per height */
	signer[st[r]] = r + 1
}

/* Close: the release transaction (check-session; final watermark; unlock
 * with the marker) and the destroy, applied together, or lost. */
inline release(r) {
	if
	:: holder == ses[r] + 1 ->
		if
		:: final[r] -> assert(st[r] >= wm); maxTo(wm, st[r])
		:: else
		fi;
		holder = 0; absent = 0; fage = 0;
		marker = clean[r]; mage = 0;
		alive[ses[r]] = 0; sage[ses[r]] = 0
	:: holder != ses[r] + 1 -> alive[ses[r]] = 0; sage[ses[r]] = 0
	:: skip   /* lost: the session expires in its time */
	fi
}

inline forget(r) {
	done[r] = 0; held[r] = 0; wt[r] = 0; clean[r] = 0; rn[r] = 0; dl[r] = 0;
	waiting[r] = 0; rpIn[r] = 0; rpAge[r] = 0; rpValid[r] = 0; rpHeld[r] = 0;
	final[r] = 0
}

/* take: the lock key is free and out of lock-delay */
inline take(r) {
	holder = ses[r] + 1;
	held[r] = 1;
#ifdef MUT_NO_MARKER
	   wt[r] = 0;
#else
	   if
	   :: absent -> wt[r] = WAIT                         /* counted from the take */
	   :: !absent && marker && mage <= TTL -> wt[r] = 0  /* fresh clean release */
	   :: else -> wt[r] = WAIT - fage                    /* from the key's freeing */
	   fi;
#endif
	clean[r] = (wt[r] == 0);
	ph[r] = P_WAIT;
	absent = 0; marker = 0; mage = 0; fage = 0
}

/* The renew loop, a goroutine of its own (Session.renewLoop). */
proctype renewer(byte r) {
end_renewer:
	do
	:: atomic { ph[r] >= P_WAIT && ph[r] <= P_VAL && !lost(r) && !waiting[r] && rn[r] == 0 ->
		waiting[r] = 1;
		if
		:: skip; serveRenew(r)
#ifndef LIVENESS
		:: skip                            /* the request is lost */
		:: skip; serveRenew(r); rpIn[r] = 0      /* the answer is lost */
#endif
		fi }
#ifndef LIVENESS
	:: atomic { waiting[r] && !rpIn[r] ->   /* call timeout, retry next tick */
		waiting[r] = 0; rpIn[r] = 0; rpAge[r] = 0; rpValid[r] = 0; rpHeld[r] = 0; rn[r] = 1 }
#endif
	:: atomic { rpIn[r] && waiting[r] ->
		waiting[r] = 0;
		if
		:: lost(r) -> done[r] = 1                     /* a late answer never reopens a lease */
		:: !lost(r) && !rpValid[r] -> done[r] = 1     /* session invalidated */
		:: !lost(r) && rpValid[r] && held[r] && !rpHeld[r] -> done[r] = 1  /* lock taken or gone */
		:: else -> skip;
#ifdef MUT_RECV_DEADLINE
			maxTo(dl[r], TTL - MARGIN);
#else
			if :: rpAge[r] < TTL - MARGIN -> maxTo(dl[r], TTL - MARGIN - rpAge[r]) :: else fi;
#endif
			if :: rpAge[r] < RI -> rn[r] = RI - rpAge[r] :: else -> rn[r] = 0 fi
		fi;
		rpIn[r] = 0; rpAge[r] = 0; rpValid[r] = 0; rpHeld[r] = 0 }

	od
}

proctype replica(byte r) {
end_replica:
	do
	/* ---- Startup, Syncing, Registering: voter node, new session */
	:: atomic { ph[r] == P_START && !nodeUp[r] -> nodeUp[r] = 1 }   /* voter node started */
	:: atomic { ph[r] == P_START && nodeUp[r] && obs[r] == chain && k[r] < 2 ->   /* synced */ ses[r] = 2*r + k[r]; k[r]++; alive[ses[r]] = 1; sage[ses[r]] = 0;
		ph[r] = P_VOTE }
	:: atomic { ph[r] == P_START && k[r] >= 2 -> ph[r] = P_OUT }

	/* ---- Voting: take the free key; a lost answer shows on the next read.
	 * The take counts as a renew sent and received at that instant. */
	:: atomic { ph[r] == P_VOTE && alive[ses[r]] && holder == 0 && ldl == 0 ->
		sage[ses[r]] = 0; dl[r] = TTL - MARGIN; rn[r] = RI; take(r) }
	:: atomic { ph[r] == P_VOTE && !alive[ses[r]] -> ph[r] = P_REL }   /* the session expired */

	/* ---- promote: Acquire returns after the wait, the watermark is read */
	:: atomic { ph[r] == P_WAIT && !lost(r) && wt[r] == 0 -> clean[r] = 1; ph[r] = P_RAISE }
	:: atomic { ph[r] == P_RAISE && !lost(r) ->
#ifndef MUT_NO_RAISE
		maxTo(st[r], wm); maxTo(st[r], obs[r] + 1);
#endif
		ph[r] = P_STARTV }
	:: atomic { ph[r] == P_STARTV && !lost(r) ->
		assert(!keyed[1 - r]);   /* never two nodes holding the key */
		keyed[r] = 1; ph[r] = P_VAL }
	:: atomic { ph[r] >= P_WAIT && ph[r] <= P_STARTV && lost(r) -> ph[r] = P_REL }

	/* ---- Validating */
	:: atomic { ph[r] == P_VAL && !lost(r) && st[r] > wm ->
		/* Publish: check-session and a never-lowering write, or lost */
		if
		:: holder == ses[r] + 1 -> assert(st[r] >= wm); maxTo(wm, st[r])
		:: holder != ses[r] + 1 -> done[r] = 1
		:: skip
		fi }
#ifndef LIVENESS
	:: atomic { ph[r] == P_VAL && !lost(r) && nodeUp[r] && !stepped ->   /* step down, shutdown */
		stepped = 1; final[r] = 1; ph[r] = P_KILL }
#endif
#ifndef MUT_NO_FINAL_ON_LOSS
	/* validating: lease lost -> killNode -> release(true): the final
	 * watermark goes with the release (finding F1, fixed) */
	:: atomic { ph[r] == P_VAL && lost(r) -> final[r] = 1; ph[r] = P_KILL }
#else
	/* the code before the fix: no final watermark, yet Close writes the
	 * clean marker */
	:: atomic { ph[r] == P_VAL && lost(r) -> ph[r] = P_KILL }
#endif
	:: atomic { ph[r] == P_VAL && !nodeUp[r] -> final[r] = 1; ph[r] = P_REL }  /* the validator exited */
#ifdef MUT_RELEASE_FIRST
	:: atomic { ph[r] == P_KILL -> release(r); ph[r] = P_REL }
	:: atomic { ph[r] == P_REL -> keyed[r] = 0; nodeUp[r] = 0; forget(r); ph[r] = P_START }
#else
	:: atomic { ph[r] == P_KILL -> keyed[r] = 0; nodeUp[r] = 0; ph[r] = P_REL }  /* kill, reap */
	:: atomic { ph[r] == P_REL -> release(r); forget(r); ph[r] = P_START }
#endif

	/* ---- the deadline fence (a goroutine of its own): kill and reap at Done */
	:: atomic { keyed[r] && lost(r) -> keyed[r] = 0; nodeUp[r] = 0 }

	/* ---- the node */
	:: atomic { nodeUp[r] && obs[r] < chain -> obs[r] = chain }
	:: atomic { keyed[r] && obs[r] + 1 > st[r] -> sign(r) }
#if !defined(LIVENESS) && !defined(NO_NODE_DEATH)
	:: atomic { keyed[r] -> keyed[r] = 0; nodeUp[r] = 0 }   /* the validator node dies */
#endif

	/* ---- crash of supervisor and node (S9), restart */
#ifdef LIVENESS
	:: atomic { r == 0 && ph[r] == P_VAL && keyed[r] && ncrash < MAXCRASH ->
#else
	:: atomic { ph[r] != P_DOWN && ncrash < MAXCRASH ->
#endif
		ncrash++; ph[r] = P_DOWN; keyed[r] = 0; nodeUp[r] = 0; forget(r) }
#ifndef LIVENESS
	:: atomic { ph[r] == P_DOWN -> ph[r] = P_START }
#endif
	od
}

init {
	atomic {
		ph[0] = P_START; ph[1] = P_START;
		run replica(0); run replica(1);
		run renewer(0); run renewer(1)
	}
}

#ifdef LIVENESS
/* once replica 0 has crashed while validating, replica 1 loads the key */
ltl standby_takes_over { [] ((ncrash > 0) -> <> keyed[1]) }
#endif
