/*
 * valguard, signer mode: the fenced hand-over protocol.
 *
 * Two replicas, each a valguard (supervisor + signer, holding the key in
 * memory) and a node that asks it for signatures; one Consul (sessions,
 * the lock, the watermark key with its modify index, transactions applied
 * in one order with session invalidations). Safety does not depend on time
 * here, so there is no clock: a session may be invalidated (TTL expiry,
 * destroy by deposition) at any moment. Heights/rounds/steps are collapsed
 * into levels 1..MAXL, ordered; at each level a node wants one of two
 * block data (1, 2).
 *
 * Mutant (must fail):
 *   MUT_REPLY_FIRST   the leader replies with the signature before the fence
 *
 * RESTORE: the watermark key may go missing or down (deleted, a Consul
 * snapshot restore) and a new leader raises it above the chain (S8):
 *   chainH            the network's latest committed level, relative to a
 *                     chain that already has blocks (GENESIS: none yet); a
 *                     node enters level l only once chainH >= l - 1, so
 *                     chainH >= every released level - 1
 *   flL/flD           each replica's floor file (survives a crash)
 *   Lead              known = max(floor file, memory); a missing
 *                     key, or one below known, is raised to the highest of
 *                     the key, known and (chainH + 1, BLK: the whole level
 *                     blocked) and written back (create-only CAS at 0 for a
 *                     missing key, CAS on the read index for a lowered
 *                     one) before leading; a new validator (nothing known,
 *                     no block) leads from zero
 *   standby           never adopts a missing or lowered key
 *   leader            a fence that finds its key deleted writes back the
 *                     watermark in memory (create-only) and fences again
 * Environment (process env), each at most MAXDEL / MAXROLL times:
 *   MAXDEL            the key is deleted at any moment
 *   MAXROLL           the key is rolled back to its set-up value (0, 0) at
 *                     its set-up index 1 (an old snapshot restored); with
 *                     ROLL_SEEN only once every replica's floor file holds
 *                     the key being replaced
 *   FLOOR_ASIDE       a restarted replica may find its floor file moved
 *                     aside by the operator (once)
 *   NODE_LAG          a new leader's node may be one level behind chainH
 *   GENESIS           no block committed yet, the key absent at the start
 * Mutants (with RESTORE, must fail):
 *   MUT_MISSING_AS_EMPTY      Lead reads a missing key as the zero watermark
 *   MUT_STANDBY_ADOPTS_LOWER  a standby adopts a lowered key, and Lead checks
 *                             it against its memory only (no floor file)
 *   MUT_NO_WRITE_BACK         Lead leads from the raised watermark without
 *                             writing it back (harmless here: README.md)
 *   KEEP_FLOOR_CHECK          (with MUT_STANDBY_ADOPTS_LOWER) the adoption
 *                             alone: Lead keeps the floor file check
 *   ONLY_S1                   drop the watermark-coverage assertions, so
 *                             that a counterexample is two signatures
 * Scenario switches:
 *   LIVENESS          replica 0 leads, then crashes for good (possibly between
 *                     fence and reply); no further faults; check with -a -f
 *   SAME_DATA         (with LIVENESS) both nodes want the same data
 *   NO_CRASH_IN_WINDOW (with LIVENESS) the leader does not crash between
 *                     signing and replying
 * LIVENESS alone fails: that is the documented exception (a crash between
 * fence and reply while the standby's node wants other data).
 */

#ifndef MAXL
#define MAXL 2
#endif
#ifndef MAXCRASH
#define MAXCRASH 1         /* valguard crashes per run */
#endif

/* Consul */
byte holder;               /* replica+1 whose session holds the lock; 0 free */
bool salive[2];            /* the replica's current session is alive */
byte wmL; byte wmD;        /* watermark: level and data signed */
byte wmIdx;                /* the watermark key's modify index */

/* what left any valguard: out[l] is the data signed at level l (0: none) */
byte out[MAXL+1];

/* valguard (supervisor + signer) */
bool up[2];                /* running */
bool leading[2];           /* the signer fences new signatures */
byte mL[2]; byte mD[2];    /* watermark in memory */
byte mIdx[2];              /* index the next fence checks */
byte fence[2];             /* 0 none; 1 fence sent (pending sig pL/pD) */
byte pL[2]; byte pD[2];    /* the signature made in memory, not yet released */
byte fans[2];              /* fence answer: 0 none, 1 ok, 2 failed or unknown,
                            * 3 (RESTORE) moved: the lock check passed, the CAS did not */
byte fidx[2];              /* the new index a committed fence returns */
byte crashes;

#ifdef RESTORE
#define BLK 3              /* data of a raised watermark: the whole level blocked */
#ifndef MAXDEL
#define MAXDEL 0
#endif
#ifndef MAXROLL
#define MAXROLL 0
#endif
bool wmGone;               /* the watermark key is absent */
byte ridx;                 /* Consul's latest raft index (a recreated key gets a new one) */
byte chainH;               /* the network's latest committed level */
byte flL[2]; byte flD[2];  /* floor files */
byte dels; byte rolls; byte asides;
byte kL, kD, tL, tD, vw;   /* Lead's temporaries, zero outside its atomic step
                            * (not hidden: BFS refuses hidden variables) */
#if MAXL != 2
#error RESTORE needs MAXL 2 (HI_OUT)
#endif
/* the highest level released */
#define HI_OUT (out[2] != 0 -> 2 : (out[1] != 0 -> 1 : 0))
#ifdef ONLY_S1
#define COVERS(l) skip
#else
#define COVERS(l) assert((l) >= HI_OUT)  /* the watermark covers every released signature */
#endif
/* a node enters level l once the chain committed l - 1: the chain commits
 * exactly when first needed, the lowest chain a run allows (a higher one
 * only raises the restore further) */
#define COMMITTED(r) if :: chainH + 1 < nL[r] -> chainH = nL[r] - 1 :: else fi
/* the fence's check-and-set: index 0 creates a missing key only */
#define CAS_OK(r) ((wmGone && mIdx[r] == 0) || (!wmGone && mIdx[r] != 0 && wmIdx == mIdx[r]))
#else
#define COMMITTED(r) skip
#define CAS_OK(r) (wmIdx == mIdx[r])
#endif

/* the node */
byte nL[2]; byte nD[2];    /* the request: level and data (0: asks nothing) */
bool refused[2];           /* the node dropped its step after a refusal */
bool got1;                 /* replica 1's node got a new signature (liveness) */

#define ABOVE(r) (nL[r] > mL[r])
#define EQUAL(r) (nL[r] == mL[r])

inline reply_sig(r, l, d) {
	assert(out[l] == 0 || out[l] == d);   /* one signature per level */
#ifdef RESTORE
	assert(l <= chainH + 1);              /* a node signs only above the chain */
#endif
	out[l] = d;
	/* the node moves on to the next level */
	if
	:: nL[r] < MAXL -> nL[r]++; COMMITTED(r);
#ifdef SAME_DATA
		nD[r] = 1
#else
		if :: nD[r] = 1 :: nD[r] = 2 fi
#endif
	:: else -> nL[r] = 0
	fi
}

/* a write of the watermark key by a replica (a fence or a write-back) */
inline write_key(l, d) {
#ifdef RESTORE
	ridx++; wmIdx = ridx; wmGone = 0;
#else
	wmIdx++;
#endif
	wmL = l; wmD = d
}

inline fence_txn(r) {
	if
	:: holder == r + 1 && CAS_OK(r) ->
		assert(pL[r] > wmL);   /* the watermark never decreases */
		write_key(pL[r], pD[r]); fidx[r] = wmIdx;
		if :: fans[r] = 1
#ifndef LIVENESS
		   :: fans[r] = 2   /* applied, answer lost: unknown */
#endif
		fi
#ifdef RESTORE
	:: holder == r + 1 && !CAS_OK(r) -> fans[r] = 3   /* the lock check passed, the CAS did not: moved */
	:: holder != r + 1 -> fans[r] = 2
#else
	:: else -> fans[r] = 2
#endif
	fi
}

active proctype consul() {
end_consul:
	do
	/* a session invalidated: TTL expiry, or destroyed by deposition */
	:: atomic { holder != 0 && !(up[holder-1]) -> salive[holder-1] = 0; holder = 0 }
#ifndef LIVENESS
	:: atomic { holder != 0 -> salive[holder-1] = 0; holder = 0 }
#endif
	/* the fence transaction: check-session + CAS at the index, or lost */
	:: atomic { fence[0] == 1 && fans[0] == 0 -> fence_txn(0) }
	:: atomic { fence[1] == 1 && fans[1] == 0 -> fence_txn(1) }
#if !defined(LIVENESS) && !defined(LEAN)
	:: atomic { fence[0] == 1 && fans[0] == 0 -> fans[0] = 2 }   /* lost, not applied */
	:: atomic { fence[1] == 1 && fans[1] == 0 -> fans[1] = 2 }
#endif
	od
}

#ifdef RESTORE
/* Lead: under the signing mutex, a consistent read of the watermark; a
 * missing key, or one below what this replica knows was signed, is raised
 * above everything that may have been signed and written back first. */
inline lead(r) {
	/* known: the floor file and the watermark in memory. The chain floor
	 * (the last committed level carrying this validator's precommit) is
	 * left out: that precommit may be missing from the commit, so the
	 * weakest chain floor finds nothing; it is at most chainH anyway. */
#if defined(MUT_STANDBY_ADOPTS_LOWER) && !defined(KEEP_FLOOR_CHECK)
	kL = mL[r]; kD = mD[r];
#else
	kL = flL[r]; kD = flD[r];
	if :: mL[r] > kL -> kL = mL[r]; kD = mD[r] :: else fi;
#endif
	/* the new leader's node's view of the chain */
	vw = chainH;
#ifdef NODE_LAG
	if :: vw > 0 -> vw-- :: skip fi;
#endif
	/* the key as read: value and index (0 for a missing key) */
	tL = wmL; tD = wmD;
#ifdef MUT_MISSING_AS_EMPTY
	if
	:: !wmGone && wmL < kL ||
	   wmGone && kL > 0 ->
#else
	if
	:: !wmGone && wmL < kL ||
#ifdef GENESIS
	   wmGone && (kL > 0 || vw > 0) ->        /* missing, not a new validator */
#else
	   wmGone ->                              /* missing (the chain has blocks) */
#endif
#endif
		/* raise to the highest of the key, known, and the whole level above
		 * the chain (with GENESIS and no block: nothing) */
		if :: kL > tL -> tL = kL; tD = kD :: else fi;
#ifdef GENESIS
		if :: vw > 0 && vw + 1 > tL -> tL = vw + 1; tD = BLK :: else fi;
#else
		if :: vw + 1 > tL -> tL = vw + 1; tD = BLK :: else fi;
#endif
#ifdef MUT_NO_WRITE_BACK
		mIdx[r] = wmIdx;
#else
		/* written back under the lock: create-only for a missing key, CAS
		 * on the read index for a lowered one (nothing in between: atomic) */
		COVERS(tL);
		write_key(tL, tD); mIdx[r] = wmIdx;
#endif
		mL[r] = tL; mD[r] = tD
	:: else ->
		mL[r] = wmL; mD[r] = wmD; mIdx[r] = wmIdx
	fi;
	/* the floor file rises to the watermark led from */
	if :: mL[r] > flL[r] -> flL[r] = mL[r]; flD[r] = mD[r] :: else fi;
	COVERS(mL[r]);
	leading[r] = 1;
	kL = 0; kD = 0; tL = 0; tD = 0; vw = 0
}

#ifdef ROLL_SEEN
#define ROLL_OK (flL[0] >= wmL && flL[1] >= wmL)   /* every floor file holds the key replaced */
#else
#define ROLL_OK 1
#endif

/* the environment: the watermark key deleted, or rolled back to an old
 * snapshot */
active proctype env() {
end_env:
	do
	:: atomic { dels < MAXDEL && !wmGone -> dels++; wmGone = 1; wmL = 0; wmD = 0; wmIdx = 0 }
	:: atomic { rolls < MAXROLL && !wmGone && wmIdx != 1 && ROLL_OK -> rolls++; wmL = 0; wmD = 0; wmIdx = 1 }
	od
}
#endif

proctype replica(byte r) {
end_replica:
	do
	/* ---- supervisor: Registering, Voting: take the free lock; Lead reads
	 * the watermark (consistent read) under the signing mutex */
	:: atomic { up[r] && !salive[r] -> salive[r] = 1 }
	/* a new take only after the last leadership ended (release → Revoke →
	 * Follow): the fence checks the session, and a new session is not the
	 * old one */
	:: atomic { up[r] && salive[r] && holder == 0 && !leading[r] && fence[r] == 0 -> holder = r + 1 }
	:: atomic { up[r] && holder == r + 1 && !leading[r] && fence[r] == 0 ->
#ifdef RESTORE
		lead(r)
#else
		leading[r] = 1; mL[r] = wmL; mD[r] = wmD; mIdx[r] = wmIdx
#endif
	}
	/* lease lost (a failed renew, Done): Follow under the mutex, then release */
	:: atomic { up[r] && leading[r] && fence[r] == 0 && holder != r + 1 -> leading[r] = 0 }
#if !defined(LIVENESS) && !defined(LEAN)
	/* graceful hand-over: Follow under the mutex, then unlock */
	:: atomic { up[r] && leading[r] && fence[r] == 0 && holder == r + 1 ->
		leading[r] = 0; holder = 0 }
#endif
	/* a standby follows the watermark (blocking query) */
#ifdef RESTORE
	/* it never adopts a missing key or one below its memory; its floor
	 * file rises to a key above it either way */
	:: atomic { up[r] && !leading[r] && fence[r] == 0 && !wmGone &&
#ifdef MUT_STANDBY_ADOPTS_LOWER
		    ((mL[r] != wmL || mIdx[r] != wmIdx) || wmL > flL[r]) ->
		mL[r] = wmL; mD[r] = wmD; mIdx[r] = wmIdx;
#else
		    ((wmL >= mL[r] && (mL[r] != wmL || mIdx[r] != wmIdx)) || wmL > flL[r]) ->
		if
		:: wmL >= mL[r] -> mL[r] = wmL; mD[r] = wmD; mIdx[r] = wmIdx
		:: else
		fi;
#endif
		if
		:: wmL > flL[r] -> flL[r] = wmL; flD[r] = wmD
		:: else
		fi }
#else
	:: atomic { up[r] && !leading[r] && fence[r] == 0 && (mL[r] != wmL || mIdx[r] != wmIdx) ->
		mL[r] = wmL; mD[r] = wmD; mIdx[r] = wmIdx }
#endif

	/* ---- signer: decide under the mutex (fence[r] == 0: the mutex is free) */
	:: atomic { up[r] && fence[r] == 0 && nL[r] != 0 && !refused[r] && nL[r] < mL[r] ->
		refused[r] = 1 }                                        /* below: refuse */
	:: atomic { up[r] && fence[r] == 0 && nL[r] != 0 && !refused[r] && EQUAL(r) && nD[r] == mD[r] ->
		reply_sig(r, nL[r], mD[r]) }                            /* equal, same data: re-serve */
	:: atomic { up[r] && fence[r] == 0 && nL[r] != 0 && !refused[r] && EQUAL(r) && nD[r] != mD[r] ->
		refused[r] = 1 }                                        /* equal, other data: refuse */
	:: atomic { up[r] && fence[r] == 0 && nL[r] != 0 && !refused[r] && ABOVE(r) && leading[r] ->
		/* sign in memory, then fence */
		pL[r] = nL[r]; pD[r] = nD[r];
		if :: r == 1 -> got1 = 1 :: else fi;   /* the standby signs */
#ifdef MUT_REPLY_FIRST
		reply_sig(r, pL[r], pD[r]);
#endif
		fence[r] = 1; fans[r] = 0 }
	/* above on a standby: parked (the request stays; the node re-sends) */

	/* the fence's answer */
	:: atomic { up[r] && fence[r] == 1 && fans[r] == 1 ->
		mL[r] = pL[r]; mD[r] = pD[r]; mIdx[r] = fidx[r]; fidx[r] = 0;
		fence[r] = 2 }                                          /* committed: reply next */
	:: atomic { up[r] && fence[r] == 2 ->
#ifdef RESTORE
		/* the floor file before the reply */
		if
		:: pL[r] > flL[r] -> flL[r] = pL[r]; flD[r] = pD[r]
		:: else
		fi;
#endif
#ifndef MUT_REPLY_FIRST
		reply_sig(r, pL[r], pD[r]);
#endif
		fence[r] = 0; fans[r] = 0; pL[r] = 0; pD[r] = 0 }
#ifdef RESTORE
	/* moved: read back. The key deleted while this replica leads: write
	 * back the watermark in memory (create-only, under the lock), then
	 * fence again at its new index. Anything else: demote. */
	:: atomic { up[r] && fence[r] == 1 && fans[r] == 3 ->
		if
		:: wmGone && mIdx[r] != 0 && holder == r + 1 ->
			COVERS(mL[r]);
			write_key(mL[r], mD[r]); mIdx[r] = wmIdx; fans[r] = 0
		:: else -> fans[r] = 2
		fi }
#endif
	:: atomic { up[r] && fence[r] == 1 && fans[r] == 2 ->
		/* failed or unknown: demote, drop the signature, park */
		leading[r] = 0; fence[r] = 0; fans[r] = 0; fidx[r] = 0; pL[r] = 0; pD[r] = 0 }

	/* ---- the node: a refused node moves on by gossip once the vote it
	 * needed reached some node (the other node broadcast it); a vote that
	 * was fenced but never delivered leaves it stuck (with >= 1/3 of the
	 * power the chain halts there: the documented exception) */
	:: atomic { refused[r] && nL[r] != 0 && out[nL[r]] != 0 ->
		refused[r] = 0;
		if
		:: nL[r] < MAXL -> nL[r]++; COMMITTED(r);
#ifdef SAME_DATA
			nD[r] = 1
#else
			if :: nD[r] = 1 :: nD[r] = 2 fi
#endif
		:: else -> nL[r] = 0
		fi }
	/* the chain moves on without this validator (< 1/3 of the power) */
#ifndef LIVENESS
	:: atomic { nL[r] != 0 && nL[r] < MAXL -> nL[r]++; COMMITTED(r); refused[r] = 0;
		if :: nD[r] = 1 :: nD[r] = 2 fi }
#endif

	/* ---- crash of valguard (any time: between sign, fence and reply too)
	 * and restart as a standby with its floor (the watermark it saw) */
#if defined(LIVENESS) && defined(NO_CRASH_IN_WINDOW)
	:: atomic { r == 0 && up[r] && leading[r] && crashes == 0 && wmL < MAXL && fence[r] == 0 ->
#elif defined(LIVENESS)
	:: atomic { r == 0 && up[r] && leading[r] && crashes == 0 && wmL < MAXL ->
#else
	:: atomic { up[r] && crashes < MAXCRASH ->
#endif
		crashes++; up[r] = 0; leading[r] = 0; fence[r] = 0; fans[r] = 0; fidx[r] = 0; pL[r] = 0; pD[r] = 0
#ifdef RESTORE
		; mL[r] = 0; mD[r] = 0; mIdx[r] = 0   /* memory lost; the floor file stays */
#endif
	}
#ifndef LIVENESS
	:: atomic { !up[r] -> up[r] = 1; salive[r] = 0
#if defined(RESTORE) && defined(FLOOR_ASIDE)
		;
		if
		:: skip
		:: asides == 0 && flL[r] != 0 -> asides++; flL[r] = 0; flD[r] = 0   /* floor file moved aside */
		fi
#endif
	}
#endif
	od
}

init {
	atomic {
		up[0] = 1; up[1] = 1;
#ifdef RESTORE
#ifdef GENESIS
		wmGone = 1; wmIdx = 0;          /* a new validator: no key, no block */
#else
		wmIdx = 1; ridx = 1;            /* the key, created at set-up: nothing signed */
#endif
#endif
		nL[0] = 1; nL[1] = 1;
#ifdef SAME_DATA
		nD[0] = 1; nD[1] = 1;
#else
		if :: nD[0] = 1 :: nD[0] = 2 fi;
		if :: nD[1] = 1 :: nD[1] = 2 fi;
#endif
		run replica(0); run replica(1)
	}
}

#ifdef LIVENESS
/* after replica 0 crashed, replica 1 eventually creates a signature */
ltl standby_signs { [] ((crashes > 0) -> <> got1) }
#endif
