/*
 * valguard, the leaderless signer policy (--signers any): one Consul sign
 * record per validator decides which signature exists (S11).
 *
 * NR replicas (2; -DNR=3 for three), each a valguard whose signer answers
 * its own node. No lock, no leader: every replica may sign. One Consul
 * record per validator holds the last signed level, its data (the sign
 * bytes but for the timestamp) and its modify index; it is written only by
 * a check-and-set (CAS) on that index. Heights/rounds/steps are collapsed
 * into levels 1..MAXL (a level is one height, as in signer.pml RESTORE); at
 * each level a node wants one of two data (1: a block, 2: nil), chosen anew
 * at every level and every node restart, independently per node.
 *
 * A replica decides against the record as it last read it (memory):
 *   below                refuse
 *   equal, same data     reply with the recorded signature
 *   equal, other data    refuse
 *   above                sign locally, CAS the record at the index read,
 *                        reply only once the CAS committed
 * CAS answers: committed; refused (the index moved: a lost race, or the
 * record is missing): re-read, then decide again; unknown (the CAS was
 * applied with its answer lost, or it timed out and may still apply
 * later): never a success; re-read, or send the same CAS (same value,
 * same index) again.
 *
 * A read that finds the record missing restores it (the raise of S8): to
 * the highest of the floor file, the memory and (chainH + 1, BLK: the
 * whole in-flight level blocked), created at index 0 (create-only). The
 * read and the create are one step. With one delete that is exact: between
 * them only another replica's create can change a missing record, and it
 * makes this create fail, a read that did not happen (SPLIT_RESTORE: two
 * steps).
 *
 *   chainH            the network's latest committed level; a node enters
 *                     level l only once chainH >= l - 1 (the chain commits
 *                     exactly when first needed: the lowest chain a run
 *                     allows)
 *   flL/flD           each replica's floor file (survives a crash): raised
 *                     by every read to the record seen, and by a committed
 *                     CAS before the reply
 *   mL/mD/mIdx/mRd    memory: the record as last read (mRd: read since
 *                     the start; a crash loses it)
 *   ghost             a timed-out CAS still in flight: Consul may apply it
 *                     (if its index still matches) or drop it later
 *   NODE_LAG          the restoring replica's node may be one level behind
 *                     chainH (its own status height)
 *   SPLIT_RESTORE     a restore's read and its create are two steps (the
 *                     create-only write refused if the record exists)
 * Faults: MAXCRASH replica crashes (valguard and its node together, S9;
 * memory lost, the floor file kept), MAXUNK unknown CAS outcomes, MAXDEL
 * deletes of the record at any moment.
 *
 * Properties (assertions):
 *   one signature per level: no two different data released for one level
 *   by any replicas (S11);
 *   the record never goes down: a CAS never lowers it, and while present it
 *   is at or above every released level (monitor, and each restore);
 *   a released signature is at most one level above the chain.
 *
 * Mutants (must fail):
 *   MUT_REPLY_FIRST           reply with the new signature before the CAS
 *   MUT_NO_REREAD             a lost race is not re-read: the replica takes
 *                             the record's new index and CASes its own
 *                             signature again at it
 *   MUT_MISSING_AS_EMPTY      a missing record is read as empty (level 0,
 *                             index 0) and created by the next CAS
 *   MUT_SIGN_OTHER_DATA       the same level with other data signs and
 *                             replies as if only the timestamp differed
 *   MUT_UNKNOWN_AS_SUCCESS    an unknown CAS outcome is taken as committed
 *   MUT_WRITE_BACK_MEMORY     a missing record is written back from memory
 *                             alone (the floor file and chain raise only
 *                             after a crash emptied the memory)
 *   ONLY_S11                  drop the record assertions (never down,
 *                             restore covers), so that a mutant's
 *                             counterexample is two signatures for a level
 * Findings (must fail, README.md): NODE_LAG with MAXDEL=1 (F5);
 * SPLIT_RESTORE with MAXDEL=2 (F6).
 *
 * Scenario (LIVENESS, check with -a -f): replica 0 may crash once, for
 * good; no unknown outcome, no delete; a node moves on only after a
 * refusal (the chain went on with a signature it could not get). Then
 * replica 1's node is never stuck: it gets a signature or a refusal at
 * every level, to the last.
 *   SAME_DATA         (with LIVENESS) every node wants the same data; then
 *                     replica 1 releases a signature
 */

#ifndef NR
#define NR 2
#endif
#ifndef MAXL
#define MAXL 2
#endif
#ifndef MAXCRASH
#define MAXCRASH 1         /* replica crashes per run */
#endif
#ifndef MAXUNK
#ifdef LIVENESS
#define MAXUNK 0
#else
#define MAXUNK 2           /* unknown CAS outcomes per run */
#endif
#endif
#ifndef MAXDEL
#define MAXDEL 0           /* deletes of the record per run */
#endif

#define BLK 3              /* data of a raised record: the whole level blocked */

/* Consul: the sign record */
bool recGone;              /* the record is absent */
byte recL; byte recD;      /* last signed level and its data */
byte recIdx;               /* modify index (0 while absent) */
byte ridx;                 /* Consul's latest raft index: every write takes a new one */

/* the chain and what left any valguard */
byte chainH;               /* the network's latest committed level */
byte out[MAXL+1];          /* out[l]: the data released at level l (0: none) */
byte hiOut;                /* the highest level released */

/* replicas */
bool up[NR];
bool mRd[NR];              /* memory holds a read of the record */
byte mL[NR]; byte mD[NR]; byte mIdx[NR];
byte flL[NR]; byte flD[NR];/* floor file */
byte ph[NR];               /* 0 idle; 1 CAS sent (pL, pD at mIdx), answer in ans;
                            * 2 (SPLIT_RESTORE) a restore's create to send (pL, pD) */
byte pL[NR]; byte pD[NR];  /* the signature made locally, not yet released */
byte ans[NR];              /* 0 none, 1 committed, 2 refused, 3 unknown */
byte nIdx[NR];             /* the new index a committed CAS returns */
bool gh[NR];               /* a timed-out CAS still in flight */
byte gL[NR]; byte gD[NR]; byte gIdx[NR];

/* nodes */
byte nL[NR]; byte nD[NR];  /* the request: level and data (level 0: done) */
bool refused[NR];          /* the node dropped its step after a refusal */

byte crashes; byte unks; byte dels;
bool got1;                 /* replica 1 released a signature (LIVENESS) */
byte kL, kD, vw;           /* restore's temporaries, zero outside its atomic step
                            * (not hidden: BFS refuses hidden variables) */

#ifdef ONLY_S11
#define REC_ASSERT(c) skip
#else
#define REC_ASSERT(c) assert(c)
#endif

#define CAS_OK(i) (!recGone && recIdx == (i) || recGone && (i) == 0)

/* a node enters level l once the chain committed l - 1 */
#define COMMITTED(r) if :: chainH + 1 < nL[r] -> chainH = nL[r] - 1 :: else fi

inline pick(r) {
#ifdef SAME_DATA
	nD[r] = 1
#else
	if :: nD[r] = 1 :: nD[r] = 2 fi
#endif
}

/* the node moves on to the next level (or is done) */
inline advance(r) {
	refused[r] = 0;
	if
	:: nL[r] < MAXL -> nL[r]++; COMMITTED(r); pick(r)
	:: else -> nL[r] = 0
	fi
}

inline reply_sig(r, l, d) {
	assert(out[l] == 0 || out[l] == d);   /* one signature per level (S11) */
	assert(l <= chainH + 1);              /* a node signs only above the chain */
	out[l] = d;
	if :: l > hiOut -> hiOut = l :: else fi;
#ifdef LIVENESS
	if :: r == 1 -> got1 = 1 :: else fi;
#endif
	advance(r)
}

inline raise_floor(r, l, d) {
	if :: l > flL[r] -> flL[r] = l; flD[r] = d :: else fi
}

/* a write of the record (a CAS or a create) */
inline write_rec(l, d) {
	REC_ASSERT(l >= recL || recGone);     /* the record never goes down */
	ridx++; recIdx = ridx; recGone = 0; recL = l; recD = d
}

/* Consul applies replica r's CAS: committed, refused (index moved or the
 * record missing), or the answer lost (unknown) whether applied or not; a
 * CAS that timed out unapplied may stay in flight (ghost) */
inline cas_txn(r) {
	if
	:: CAS_OK(mIdx[r]) ->
		write_rec(pL[r], pD[r]); nIdx[r] = recIdx;
		if :: ans[r] = 1
		   :: unks < MAXUNK -> unks++; ans[r] = 3   /* applied, answer lost */
		fi
	:: !CAS_OK(mIdx[r]) -> ans[r] = 2
	:: unks < MAXUNK -> unks++; ans[r] = 3          /* timed out, not applied */
		if
		:: !gh[r] -> gh[r] = 1; gL[r] = pL[r]; gD[r] = pD[r]; gIdx[r] = mIdx[r]  /* still in flight */
		:: skip                                                               /* dropped */
		fi
	fi
}

active proctype consul() {
end_consul:
	do
	:: atomic { ph[0] == 1 && ans[0] == 0 -> cas_txn(0) }
	:: atomic { ph[1] == 1 && ans[1] == 0 -> cas_txn(1) }
#if NR > 2
	:: atomic { ph[2] == 1 && ans[2] == 0 -> cas_txn(2) }
#endif
	/* a timed-out CAS arrives late: it applies only if its index still matches */
	:: atomic { gh[0] -> if :: CAS_OK(gIdx[0]) -> write_rec(gL[0], gD[0]) :: else fi;
		gh[0] = 0; gL[0] = 0; gD[0] = 0; gIdx[0] = 0 }
	:: atomic { gh[1] -> if :: CAS_OK(gIdx[1]) -> write_rec(gL[1], gD[1]) :: else fi;
		gh[1] = 0; gL[1] = 0; gD[1] = 0; gIdx[1] = 0 }
#if NR > 2
	:: atomic { gh[2] -> if :: CAS_OK(gIdx[2]) -> write_rec(gL[2], gD[2]) :: else fi;
		gh[2] = 0; gL[2] = 0; gD[2] = 0; gIdx[2] = 0 }
#endif
	/* the environment: the record deleted at any moment */
	:: atomic { dels < MAXDEL && !recGone -> dels++; recGone = 1; recL = 0; recD = 0; recIdx = 0 }
	od
}

#ifndef ONLY_S11
/* the record never goes down: while present it holds every released level */
active proctype monitor() {
end_monitor:
	atomic { !recGone && recL < hiOut -> assert(false) }
}
#endif

/* a read of the record (a consistent read); a missing record is restored */
inline read_rec(r) {
	if
	:: !recGone ->
		mL[r] = recL; mD[r] = recD; mIdx[r] = recIdx
	:: else ->
#ifdef MUT_MISSING_AS_EMPTY
		mL[r] = 0; mD[r] = 0; mIdx[r] = 0   /* "no history" */
#else
#ifdef MUT_WRITE_BACK_MEMORY
		if
		:: mRd[r] -> kL = mL[r]; kD = mD[r]   /* the value this replica holds */
		:: else ->
#endif
		/* known: the floor file and the memory */
		kL = flL[r]; kD = flD[r];
		if :: mRd[r] && mL[r] > kL -> kL = mL[r]; kD = mD[r] :: else fi;
		/* the whole level above the chain, as this replica's node sees it */
		vw = chainH;
#ifdef NODE_LAG
		if :: vw > 0 -> vw-- :: skip fi;
#endif
		if :: vw + 1 > kL -> kL = vw + 1; kD = BLK :: else fi
#ifdef MUT_WRITE_BACK_MEMORY
		fi;
#endif
		;
#ifdef SPLIT_RESTORE
		/* the create is sent as a step of its own */
		pL[r] = kL; pD[r] = kD; ph[r] = 2;
#else
		REC_ASSERT(kL >= hiOut);   /* the restore covers every released signature */
		write_rec(kL, kD);
		mL[r] = kL; mD[r] = kD; mIdx[r] = recIdx;
#endif
		kL = 0; kD = 0; vw = 0
#endif
	fi;
	if
	:: ph[r] == 0 -> mRd[r] = 1; raise_floor(r, mL[r], mD[r])
	:: else
	fi
}

proctype replica(byte r) {
end_replica:
	do
	/* read (or re-read) the record while idle */
	:: atomic { up[r] && ph[r] == 0 && (!mRd[r] || mIdx[r] != recIdx || recGone) -> read_rec(r) }

#ifdef SPLIT_RESTORE
	/* the create-only write of a restore: refused if the record exists */
	:: atomic { up[r] && ph[r] == 2 ->
		if
		:: recGone ->
			REC_ASSERT(pL[r] >= hiOut);
			write_rec(pL[r], pD[r]);
			mL[r] = pL[r]; mD[r] = pD[r]; mIdx[r] = recIdx; mRd[r] = 1;
			raise_floor(r, pL[r], pD[r])
		:: else
		fi;
		ph[r] = 0; pL[r] = 0; pD[r] = 0 }
#endif

	/* decide against the record as read */
	:: atomic { up[r] && ph[r] == 0 && mRd[r] && nL[r] != 0 && !refused[r] && nL[r] < mL[r] ->
		refused[r] = 1 }                                        /* below: refuse */
	:: atomic { up[r] && ph[r] == 0 && mRd[r] && nL[r] != 0 && !refused[r] && nL[r] == mL[r] && nD[r] == mD[r] ->
		reply_sig(r, nL[r], mD[r]) }                            /* equal, same data: the recorded signature */
	:: atomic { up[r] && ph[r] == 0 && mRd[r] && nL[r] != 0 && !refused[r] && nL[r] == mL[r] && nD[r] != mD[r] ->
#ifdef MUT_SIGN_OTHER_DATA
		reply_sig(r, nL[r], nD[r])                              /* taken for a timestamp difference */
#else
		refused[r] = 1                                          /* equal, other data: refuse */
#endif
	}
	:: atomic { up[r] && ph[r] == 0 && mRd[r] && nL[r] != 0 && !refused[r] && nL[r] > mL[r] ->
		/* above: sign locally, then CAS at the index read */
		pL[r] = nL[r]; pD[r] = nD[r];
#ifdef MUT_REPLY_FIRST
		reply_sig(r, pL[r], pD[r]);
#endif
		ph[r] = 1; ans[r] = 0 }

	/* the CAS's answer */
	:: atomic { up[r] && ph[r] == 1 && ans[r] == 1 ->
		/* committed: memory, the floor file, then the reply */
		mL[r] = pL[r]; mD[r] = pD[r]; mIdx[r] = nIdx[r]; nIdx[r] = 0;
		raise_floor(r, pL[r], pD[r]);
#ifndef MUT_REPLY_FIRST
		reply_sig(r, pL[r], pD[r]);
#endif
		ph[r] = 0; ans[r] = 0; pL[r] = 0; pD[r] = 0 }
	:: atomic { up[r] && ph[r] == 1 && ans[r] == 2 ->
#ifdef MUT_NO_REREAD
		/* the record's new index, and the same signature again */
		mIdx[r] = recIdx; ans[r] = 0
#else
		/* a lost race: re-read, then decide again */
		mRd[r] = 0; ph[r] = 0; ans[r] = 0; pL[r] = 0; pD[r] = 0
#endif
	}
	:: atomic { up[r] && ph[r] == 1 && ans[r] == 3 ->
#ifdef MUT_UNKNOWN_AS_SUCCESS
		raise_floor(r, pL[r], pD[r]);
		reply_sig(r, pL[r], pD[r]);
		mRd[r] = 0; ph[r] = 0; ans[r] = 0; pL[r] = 0; pD[r] = 0
#else
		/* unknown: re-read before anything else is signed, or send the
		 * same CAS (same value, same index) again */
		if
		:: mRd[r] = 0; ph[r] = 0; ans[r] = 0; pL[r] = 0; pD[r] = 0
		:: ans[r] = 0
		fi
#endif
	}

	/* the node moves on without this replica's signature (the chain moves
	 * on; a refused node does too) */
#ifdef LIVENESS
	:: atomic { up[r] && ph[r] == 0 && nL[r] != 0 && refused[r] -> advance(r) }
#else
	:: atomic { up[r] && ph[r] == 0 && nL[r] != 0 -> advance(r) }
#endif

	/* crash: valguard and its node; memory lost, the floor file kept; a
	 * CAS sent may still be in flight */
#ifdef LIVENESS
	:: atomic { r == 0 && up[r] && crashes == 0 ->
#else
	:: atomic { up[r] && crashes < MAXCRASH ->
#endif
		crashes++; up[r] = 0;
		if
		:: ph[r] == 1 && ans[r] == 0 && !gh[r] -> gh[r] = 1; gL[r] = pL[r]; gD[r] = pD[r]; gIdx[r] = mIdx[r]
		:: else
		fi;
		ph[r] = 0; ans[r] = 0; nIdx[r] = 0; pL[r] = 0; pD[r] = 0;
		mRd[r] = 0; mL[r] = 0; mD[r] = 0; mIdx[r] = 0; refused[r] = 0 }
	/* restart: the node asks again at its level, with data chosen anew */
#ifndef LIVENESS
	:: atomic { !up[r] -> up[r] = 1; if :: nL[r] != 0 -> pick(r) :: else fi }
#endif
	od
}

init {
	byte i = 0;
	atomic {
		recIdx = 1; ridx = 1;          /* the record, created at set-up: nothing signed */
		do
		:: i < NR -> up[i] = 1; nL[i] = 1; pick(i); i++
		:: else -> break
		od;
		i = 0;
		do
		:: i < NR -> run replica(i); i++
		:: else -> break
		od
	}
}

#ifdef LIVENESS
#ifdef SAME_DATA
/* after replica 0 crashed for good, replica 1 eventually releases a signature */
ltl other_signs { [] ((crashes > 0) -> <> got1) }
#else
/* after replica 0 crashed for good, replica 1's node is never stuck */
ltl other_not_stuck { [] ((crashes > 0) -> <> (nL[1] == 0)) }
#endif
#endif
