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
byte fans[2];              /* fence answer: 0 none, 1 ok, 2 failed or unknown */
byte fidx[2];              /* the new index a committed fence returns */
byte crashes;

/* the node */
byte nL[2]; byte nD[2];    /* the request: level and data (0: asks nothing) */
bool refused[2];           /* the node dropped its step after a refusal */
bool got1;                 /* replica 1's node got a new signature (liveness) */

#define ABOVE(r) (nL[r] > mL[r])
#define EQUAL(r) (nL[r] == mL[r])

inline reply_sig(r, l, d) {
	assert(out[l] == 0 || out[l] == d);   /* one signature per level */
	out[l] = d;
	/* the node moves on to the next level */
	if
	:: nL[r] < MAXL -> nL[r]++;
#ifdef SAME_DATA
		nD[r] = 1
#else
		if :: nD[r] = 1 :: nD[r] = 2 fi
#endif
	:: else -> nL[r] = 0
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
	:: atomic { fence[0] == 1 && fans[0] == 0 ->
		if
		:: holder == 1 && wmIdx == mIdx[0] ->
			assert(pL[0] > wmL);   /* the watermark never decreases */
			wmL = pL[0]; wmD = pD[0]; wmIdx++; fidx[0] = wmIdx;
			if :: fans[0] = 1
#ifndef LIVENESS
			   :: fans[0] = 2   /* applied, answer lost: unknown */
#endif
			fi
		:: else -> fans[0] = 2
		fi }
	:: atomic { fence[1] == 1 && fans[1] == 0 ->
		if
		:: holder == 2 && wmIdx == mIdx[1] ->
			assert(pL[1] > wmL);
			wmL = pL[1]; wmD = pD[1]; wmIdx++; fidx[1] = wmIdx;
			if :: fans[1] = 1
#ifndef LIVENESS
			   :: fans[1] = 2
#endif
			fi
		:: else -> fans[1] = 2
		fi }
#ifndef LIVENESS
	:: atomic { fence[0] == 1 && fans[0] == 0 -> fans[0] = 2 }   /* lost, not applied */
	:: atomic { fence[1] == 1 && fans[1] == 0 -> fans[1] = 2 }
#endif
	od
}

proctype replica(byte r) {
end_replica:
	do
	/* ---- supervisor: Registering, Voting: take the free lock; Lead reads
	 * the watermark (consistent read) under the signing mutex */
	:: atomic { up[r] && !salive[r] -> salive[r] = 1 }
	:: atomic { up[r] && salive[r] && holder == 0 -> holder = r + 1 }
	:: atomic { up[r] && holder == r + 1 && !leading[r] && fence[r] == 0 ->
		leading[r] = 1; mL[r] = wmL; mD[r] = wmD; mIdx[r] = wmIdx }
	/* lease lost (a failed renew, Done): Follow under the mutex, then release */
	:: atomic { up[r] && leading[r] && fence[r] == 0 && holder != r + 1 -> leading[r] = 0 }
#ifndef LIVENESS
	/* graceful hand-over: Follow under the mutex, then unlock */
	:: atomic { up[r] && leading[r] && fence[r] == 0 && holder == r + 1 ->
		leading[r] = 0; holder = 0 }
#endif
	/* a standby follows the watermark (blocking query) */
	:: atomic { up[r] && !leading[r] && fence[r] == 0 && (mL[r] != wmL || mIdx[r] != wmIdx) ->
		mL[r] = wmL; mD[r] = wmD; mIdx[r] = wmIdx }

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
#ifndef MUT_REPLY_FIRST
		reply_sig(r, pL[r], pD[r]);
#endif
		fence[r] = 0; fans[r] = 0; pL[r] = 0; pD[r] = 0 }
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
		:: nL[r] < MAXL -> nL[r]++;
#ifdef SAME_DATA
			nD[r] = 1
#else
			if :: nD[r] = 1 :: nD[r] = 2 fi
#endif
		:: else -> nL[r] = 0
		fi }
	/* the chain moves on without this validator (< 1/3 of the power) */
#ifndef LIVENESS
	:: atomic { nL[r] != 0 && nL[r] < MAXL -> nL[r]++; refused[r] = 0;
		if :: nD[r] = 1 :: nD[r] = 2 fi }
#endif

	/* ---- crash of valguard (any time: between sign, fence and reply too)
	 * and restart as a standby with its floor (the watermark it saw) */
#if defined(LIVENESS) && defined(NO_CRASH_IN_WINDOW)
	:: atomic { r == 0 && up[r] && leading[r] && crashes == 0 && wmL < MAXL && fence[r] == 0 ->
#elif defined(LIVENESS)
	:: atomic { r == 0 && up[r] && leading[r] && crashes == 0 && wmL < MAXL ->
#else
	:: atomic { up[r] && crashes < 1 ->
#endif
		crashes++; up[r] = 0; leading[r] = 0; fence[r] = 0; fans[r] = 0; fidx[r] = 0; pL[r] = 0; pD[r] = 0 }
#ifndef LIVENESS
	:: atomic { !up[r] -> up[r] = 1; salive[r] = 0 }
#endif
	od
}

init {
	atomic {
		up[0] = 1; up[1] = 1;
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
