#!/usr/bin/python3
"""Independent float64 reference of the KV-cache policies (test oracle).

This simulates ONE attention layer's KV cache under a cache policy, written
from the behavioural spec ``docs/policies.md`` (sections 1, 3, 4, 6)
without looking at the C++ implementation; the C++ policies are compared
against it.  Everything is float64 numpy.  Run it with /usr/bin/python3.

Usage:
  policy_reference.py --in scenarios.json --out results.json
Input: a JSON list of scenarios (name, strategy, compressor, capacity,
global_tokens, recent_window (already resolved), history_window_size,
attn_thresholding, min_recovery_frac, hybrid_strategies, special_sequences,
punctuation_ids, tokens, prefill, q [Hq][T][d], k/v [H][T][d] after RoPE).
Output: a JSON list of {name, positions[step][head][...], losses[...]};
step 0 is after prefill, step t after decode step t; losses only for debug_*.
Bad input exits with code 2 and a message on stderr.

Clarifications adopted on top of the spec:
- Probabilities per KV head are the mean over its GQA group of query heads.
- Decode: the slot is chosen (for all heads) before attention; an empty slot
  is the lowest empty index; 1.4 argmin ties go to the lowest slot; sinks
  are protected by position (pos < g), recent by pos >= p - r.  If every
  filled slot is protected, evict the non-sink with the smallest position
  (all sinks: the slot holding the largest position).
- heavy_hitter: protected slots score +inf (not 1.0), empty -inf; a slot's
  history is reset whenever a token is written into it, evicted or empty (as
  the Cold Compress code resets whatever slot it picks); thresholding with
  m == 1 ORs.
- Compressors keep the top L by priority, ties to the later position, then
  sort ascending.  Head-constant policies are simply evaluated per head.
- full and hybrid run with capacity T (the whole sequence length).
- hybrid: profiling per spec 3.7 (last strategy as fallback); the heavy-hitter
  part picks among keys not selected in the last query row by the strategy's
  own other parts (sinks/special/punc/window); per-slot history ring of 400
  starting with one sample (cum at the kept positions, denom 1); a slot's
  history is reset whenever it is (re)filled; a head that does not cache the
  token attends over its slots plus the token itself.
- debug_X: the shadow of X is updated with the full-attention probabilities
  gathered at its held positions; loss = mean over heads of 1 - held mass.
"""
import argparse
import json
import math
import sys

import numpy as np

INF = float("inf")
STRATEGIES = ("full", "recent_global", "l2", "heavy_hitter", "keep_it_odd", "hybrid")
COMPRESSORS = ("full", "recent_global", "l2", "keep_it_odd", "heavy_hitter")
HYBRID_PARTS = ("special", "punc", "window", "heavy_hitter")
HYBRID_HISTORY = 400
SNAPKV_OBS = 16
SNAPKV_KERNEL = 5


class BadInput(Exception):
    pass


# --------------------------------------------------------------------------
# Attention
# --------------------------------------------------------------------------
def softmax(x):
    m = np.max(x, axis=-1, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=-1, keepdims=True)


class Attention:
    """q [Hq,T,d], k [H,T,d] (post-RoPE); GQA-averaged probabilities."""

    def __init__(self, q, k):
        self.q, self.k = q, k
        self.Hq, self.T, self.d = q.shape
        self.H = k.shape[0]
        self.G = self.Hq // self.H
        self.scale = 1.0 / math.sqrt(self.d)

    def prefill(self, S):
        """Causal attention of the first S tokens over themselves: [H,S,S]."""
        A = np.zeros((self.H, S, S))
        causal = np.tril(np.ones((S, S), dtype=bool))
        for j in range(self.Hq):
            h = j // self.G
            s = (self.q[j, :S] @ self.k[h, :S].T) * self.scale
            A[h] += softmax(np.where(causal, s, -INF))
        return A / self.G

    def step(self, h, p, key_pos):
        """Probabilities of query p (KV head h's group) over keys at key_pos."""
        keys = self.k[h, np.asarray(key_pos, dtype=int)]
        out = np.zeros(len(key_pos))
        for j in range(h * self.G, (h + 1) * self.G):
            out += softmax((keys @ self.q[j, p]) * self.scale)
        return out / self.G


def mean_received(A):
    """cum[h,j] = sum_i A[h,i,j] / (S - j): mean attention key j receives."""
    S = A.shape[-1]
    return A.sum(axis=1) / (S - np.arange(S))


def top_by_priority(priority, L):
    """Keep the L highest priorities (ties to the later position), ascending."""
    order = sorted(range(len(priority)), key=lambda j: (priority[j], j), reverse=True)
    return sorted(order[:L])


# --------------------------------------------------------------------------
# Prompt compressors (spec section 4), used only when S > L
# --------------------------------------------------------------------------
def compress(name, A, keys, g, r, L):
    """Returns (kept positions per head, SnapKV history per head or None)."""
    H, S, _ = A.shape
    if name == "full":
        raise BadInput("compressor 'full' cannot compress a prompt of %d > %d tokens" % (S, L))
    if name == "recent_global":
        kept = sorted(set(range(min(g, L))) | set(range(S - (L - min(g, L)), S)))
        return [kept] * H, None
    if name == "keep_it_odd":
        prio = [(3 if j < g else 2 if j >= S - r else 1 if j % 2 else 0) for j in range(S)]
        return [top_by_priority(prio, L)] * H, None
    if name == "l2":
        kept = []
        for h in range(H):
            norms = np.linalg.norm(keys[h, :S], axis=-1)
            prio = [((2, 0.0) if j < g else (1, 0.0) if j >= S - r else (0, -norms[j]))
                    for j in range(S)]
            kept.append(top_by_priority(prio, L))
        return kept, None
    if name == "heavy_hitter":  # SnapKV, 4.5
        obs = min(SNAPKV_OBS, S)
        v = A[:, S - obs:, :].mean(axis=1)
        half = SNAPKV_KERNEL // 2
        pooled = np.empty_like(v)
        for j in range(S):  # padding excluded from the average
            pooled[:, j] = v[:, max(0, j - half):min(S, j + half + 1)].mean(axis=1)
        pooled[:, S - obs:] = 1.0
        pooled[:, :g] = 1.0
        cum = mean_received(A)
        kept = [top_by_priority(list(pooled[h]), L) for h in range(H)]
        return kept, [cum[h, kept[h]] for h in range(H)]
    raise BadInput("unknown compressor %r" % name)


# --------------------------------------------------------------------------
# Cache policies (spec section 3)
# --------------------------------------------------------------------------
def pick_slot(score, pos_h, g, recent_from=None):
    """Default slot choice (1.4/1.5) for one head: argmin, ties to lowest."""
    s = np.array(score, dtype=float)
    filled = pos_h >= 0
    protected = filled & (pos_h < g)
    if recent_from is not None:
        protected |= filled & (pos_h >= recent_from)
    s[protected] = INF
    s[~filled] = -INF
    if filled.all() and np.all(s == INF):
        nonsink = np.nonzero(pos_h >= g)[0]
        if len(nonsink):
            return int(nonsink[np.argmin(pos_h[nonsink])])
        return int(np.argmax(pos_h))
    return int(np.argmin(s))


class Policy:
    needs_probs = False
    protects_recent = True

    def __init__(self, sc, L, H, attn):
        self.L, self.H, self.attn = L, H, attn
        self.g, self.r = sc["global_tokens"], sc["recent_window"]

    def prefill(self, pos, A, snap_hist):
        pass

    def choose(self, pos, h, p):
        empty = np.nonzero(pos[h] < 0)[0]
        if len(empty):
            return int(empty[0])
        return self.evict(pos, h, p)

    def evict(self, pos, h, p):
        recent = p - self.r if self.protects_recent else None
        return pick_slot(self.importance(pos, h, p), pos[h], self.g, recent)

    def on_write(self, h, slot, p, pos):
        pass

    def update(self, probs, pos):
        pass


class FullPolicy(Policy):
    def evict(self, pos, h, p):
        raise BadInput("full cache overflow at position %d" % p)


class RecentGlobalPolicy(Policy):
    protects_recent = False

    def importance(self, pos, h, p):
        return pos[h].astype(float)  # oldest non-sink first


class KeepItOddPolicy(Policy):
    def importance(self, pos, h, p):
        return (pos[h] % 2).astype(float)


class L2Policy(Policy):
    def prefill(self, pos, A, snap_hist):
        self.norm = np.zeros((self.H, self.L))
        for h in range(self.H):
            for slot in np.nonzero(pos[h] >= 0)[0]:
                self.on_write(h, slot, pos[h, slot], pos)

    def on_write(self, h, slot, p, pos):
        self.norm[h, slot] = np.linalg.norm(self.attn.k[h, p])

    def importance(self, pos, h, p):
        return np.max(self.norm[pos >= 0]) - self.norm[h]


class HeavyHitterPolicy(Policy):
    needs_probs = True

    def __init__(self, sc, L, H, attn):
        super().__init__(sc, L, H, attn)
        self.m = sc["history_window_size"]
        self.thr = sc["attn_thresholding"]
        self.num = np.zeros((H, L, self.m))
        self.denom = np.zeros((H, L))
        self.ctr = 0

    def prefill(self, pos, A, snap_hist):
        cum = mean_received(A)
        a = np.zeros((self.H, self.L))
        for h in range(self.H):
            n = int(np.sum(pos[h] >= 0))
            a[h, :n] = snap_hist[h] if snap_hist is not None else cum[h, pos[h, :n]]
        self.update(a, pos)

    def update(self, a, pos):
        filled = pos >= 0
        if self.thr:
            occ = filled.sum(axis=1, keepdims=True)
            a = ((a >= 1.0 / np.maximum(occ, 1)) & filled).astype(float)
        if self.m == 1:
            if self.thr:
                self.num[..., 0] = np.logical_or(self.num[..., 0] > 0, a > 0).astype(float)
            else:
                self.num[..., 0] += a
        else:
            self.num[..., self.ctr % self.m] = a
        self.denom += 1
        self.ctr += 1

    def importance(self, pos, h, p):
        D = np.maximum(self.denom[h], 1) if self.m == 1 else np.clip(self.denom[h], 1, self.m)
        return self.num[h].sum(axis=-1) / D

    def on_write(self, h, slot, p, pos):
        self.num[h, slot, :] = 0
        self.denom[h, slot] = 0


class HybridPolicy(Policy):
    """FastGen (3.7): per-head strategy chosen by profiling the prompt."""

    def __init__(self, sc, L, H, attn):
        super().__init__(sc, L, H, attn)
        self.min_rec = float(sc["min_recovery_frac"])
        self.specials = [tuple(s) for s in sc["special_sequences"] if len(s) > 0]
        self.punct = set(sc["punctuation_ids"])
        self.tokens = sc["tokens"]
        self.strats = []
        for e in sc["hybrid_strategies"]:
            name = e["strategy"]
            if name == "full":
                parts = {"full"}
            else:
                raw = name.replace("heavy_hitter", "HH").split("_")
                parts = {"heavy_hitter" if x == "HH" else x for x in raw}
                if not raw or any(x not in HYBRID_PARTS for x in parts) or len(parts) != len(raw):
                    raise BadInput("bad hybrid strategy %r" % name)
            fw, fhh = e.get("recent_window"), e.get("heavy_hitter_frac")
            if "window" in parts and fw is None:
                raise BadInput("hybrid strategy %r needs recent_window" % name)
            if "heavy_hitter" in parts and fhh is None:
                raise BadInput("hybrid strategy %r needs heavy_hitter_frac" % name)
            self.strats.append((name, parts, fw, fhh))
        if not self.strats:
            raise BadInput("hybrid needs at least one strategy")
        self.use_hh = any("heavy_hitter" in s[1] for s in self.strats)
        self.needs_probs = self.use_hh
        self.special_flag = np.zeros((H, L), dtype=bool)
        self.punc_flag = np.zeros((H, L), dtype=bool)
        self.num = np.zeros((H, L, HYBRID_HISTORY))
        self.denom = np.zeros((H, L))
        self.ctr = 0

    def _mask(self, parts, fw, fhh, Tb, S, special, punc, cum_h):
        """Boolean M[i,j] of one strategy for one head with budget base Tb."""
        if "full" in parts:
            return np.ones((S, S), dtype=bool)
        col = np.arange(S) < self.g
        if "special" in parts:
            col |= special
        if "punc" in parts:
            col |= punc
        i, j = np.arange(S)[:, None], np.arange(S)[None, :]
        band = np.zeros((S, S), dtype=bool)
        if "window" in parts:
            w = max(1, int(fw * Tb))
            band = (i - w < j) & (j <= i)
        if "heavy_hitter" in parts:
            avail = ~(col | band[S - 1])
            n = math.ceil(min(fhh * Tb, int(avail.sum())))
            cand = [int(x) for x in np.nonzero(avail)[0]]
            cand.sort(key=lambda x: (cum_h[x], x), reverse=True)
            col = col.copy()
            col[cand[:n]] = True
        return col[None, :] | band

    def profile(self, A, S):
        """Chooses each head's strategy; returns the kept prompt positions."""
        toks = self.tokens[:S]
        self.prompt_special = np.zeros(S, dtype=bool)
        for seq in self.specials:
            n = len(seq)
            for st in range(S - n + 1):
                if tuple(toks[st:st + n]) == seq:
                    self.prompt_special[st:st + n] = True
        self.prompt_punc = np.array([t in self.punct for t in toks], dtype=bool)
        cum = mean_received(A)
        self.cum = cum
        self.choice, kept = [], []
        for h in range(self.H):
            chosen = len(self.strats) - 1  # Fix: fallback is the last strategy
            for si, (_, parts, fw, fhh) in enumerate(self.strats):
                M = self._mask(parts, fw, fhh, S, S, self.prompt_special, self.prompt_punc, cum[h])
                R = np.mean(np.sum(A[h] * M, axis=1))
                if R >= self.min_rec:
                    chosen = si
                    break
            self.choice.append(chosen)
            _, parts, fw, fhh = self.strats[chosen]
            M = self._mask(parts, fw, fhh, self.L, S, self.prompt_special, self.prompt_punc, cum[h])
            kept.append([int(x) for x in np.nonzero(M[S - 1])[0]])
        return kept

    def prefill(self, pos, A, snap_hist):
        for h in range(self.H):
            for slot in np.nonzero(pos[h] >= 0)[0]:
                j = pos[h, slot]
                self.special_flag[h, slot] = self.prompt_special[j]
                self.punc_flag[h, slot] = self.prompt_punc[j]
                self.num[h, slot, 0] = self.cum[h, j]
        self.denom[:] = 1
        self.ctr = 1

    def choose(self, pos, h, p):
        name, parts, fw, fhh = self.strats[self.choice[h]]
        t = self.tokens[p]
        filled = pos[h] >= 0
        occ = int(filled.sum())
        append = None if occ >= self.L else occ
        if ("punc" in parts and t in self.punct) or "full" in parts:
            if append is None:
                raise BadInput("hybrid cache overflow at position %d" % p)
            return append
        budget = self.g
        if "special" in parts:
            budget += int(np.sum(self.special_flag[h] & filled))
        if "punc" in parts:
            budget += int(np.sum(self.punc_flag[h] & filled))
        if "window" in parts:
            budget += round(fw * self.L)
        if "heavy_hitter" in parts:
            budget += round(fhh * self.L)
        if occ < budget and append is not None:
            return append
        if not ("heavy_hitter" in parts or "window" in parts):
            return None
        if "heavy_hitter" in parts:
            score = self.num[h].sum(axis=-1) / np.clip(self.denom[h], 1, HYBRID_HISTORY)
        else:
            score = pos[h].astype(float)
        score = np.where(filled, score, INF)
        prot = pos[h] < self.g
        if "special" in parts:
            prot |= self.special_flag[h]
        if "punc" in parts:
            prot |= self.punc_flag[h]
        if "window" in parts:
            prot |= p - round(fw * self.L) < pos[h]
        score[prot] = INF
        if np.all(score == INF):
            return None
        return int(np.argmin(score))

    def on_write(self, h, slot, p, pos):
        t = self.tokens[p]
        self.special_flag[h, slot] = (t,) in self.specials
        self.punc_flag[h, slot] = t in self.punct
        self.num[h, slot, :] = 0
        self.denom[h, slot] = 0

    def update(self, probs, pos):
        if not self.use_hh:
            return
        self.num[..., self.ctr % HYBRID_HISTORY] = probs
        self.denom += 1
        self.ctr += 1


POLICIES = {"full": FullPolicy, "recent_global": RecentGlobalPolicy, "l2": L2Policy,
            "heavy_hitter": HeavyHitterPolicy, "keep_it_odd": KeepItOddPolicy,
            "hybrid": HybridPolicy}


# --------------------------------------------------------------------------
# Scenario driver
# --------------------------------------------------------------------------
def _array(x, ndim, what):
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise BadInput("%s is not a numeric nested list" % what)
    if a.ndim != ndim:
        raise BadInput("%s must have %d dimensions, got shape %s" % (what, ndim, a.shape))
    return a


def parse(sc):
    if not isinstance(sc, dict):
        raise BadInput("a scenario must be an object")
    defaults = {"min_recovery_frac": 0.9, "hybrid_strategies": [],
                "special_sequences": [], "punctuation_ids": []}
    sc = dict(defaults, **sc)
    for key in ("name", "strategy", "compressor", "capacity", "global_tokens", "recent_window",
                "history_window_size", "attn_thresholding", "tokens", "prefill", "q", "k"):
        if key not in sc:
            raise BadInput("scenario is missing %r" % key)
    name = str(sc["name"])
    strat = sc["strategy"]
    base = strat[len("debug_"):] if isinstance(strat, str) and strat.startswith("debug_") else strat
    if base not in STRATEGIES:
        raise BadInput("%s: unknown strategy %r" % (name, strat))
    if sc["compressor"] not in COMPRESSORS:
        raise BadInput("%s: unknown compressor %r" % (name, sc["compressor"]))
    q, k = _array(sc["q"], 3, "q"), _array(sc["k"], 3, "k")
    Hq, T, d = q.shape
    H = k.shape[0]
    if H == 0 or Hq % H or k.shape[1:] != (T, d) or d == 0:
        raise BadInput("%s: q %s and k %s do not match" % (name, q.shape, k.shape))
    if "v" in sc and _array(sc["v"], 3, "v").shape != k.shape:
        raise BadInput("%s: v must have the shape of k" % name)
    if not isinstance(sc["tokens"], list) or len(sc["tokens"]) != T:
        raise BadInput("%s: tokens must have %d entries" % (name, T))
    for key in ("capacity", "global_tokens", "recent_window", "history_window_size", "prefill"):
        if not isinstance(sc[key], int) or isinstance(sc[key], bool):
            raise BadInput("%s: %s must be an integer" % (name, key))
    if not 1 <= sc["prefill"] <= T:
        raise BadInput("%s: prefill must be in [1, %d]" % (name, T))
    if sc["history_window_size"] < 1 or sc["global_tokens"] < 0 or sc["recent_window"] < 0:
        raise BadInput("%s: bad history_window_size/global_tokens/recent_window" % name)
    L = T if base in ("full", "hybrid") else sc["capacity"]
    if L < 1 or sc["global_tokens"] > L:
        raise BadInput("%s: need 1 <= capacity and global_tokens <= capacity" % name)
    return sc, name, strat != base, base, q, k, L


def simulate(sc, prefill_attention=None):
    """Runs one scenario; prefill_attention [H,S0,S0] may be injected (tests)."""
    sc, name, debug, base, q, k, L = parse(sc)
    attn = Attention(q, k)
    H, T, S0 = attn.H, attn.T, sc["prefill"]
    A = attn.prefill(S0) if prefill_attention is None else np.asarray(prefill_attention, float)
    policy = POLICIES[base](sc, L, H, attn)

    snap_hist = None
    if base == "hybrid":
        kept = policy.profile(A, S0)
    elif S0 > L:
        kept, snap_hist = compress(sc["compressor"], A, k, sc["global_tokens"],
                                   sc["recent_window"], L)
    else:
        kept = [list(range(S0))] * H
    pos = np.full((H, L), -1, dtype=int)
    for h in range(H):
        pos[h, :len(kept[h])] = kept[h]
    policy.prefill(pos, A, snap_hist)

    def snapshot():
        return [sorted(int(x) for x in pos[h] if x >= 0) for h in range(H)]

    steps, losses = [snapshot()], []
    for p in range(S0, T):
        slots = [policy.choose(pos, h, p) for h in range(H)]
        for h, slot in enumerate(slots):
            if slot is not None:
                pos[h, slot] = p
                policy.on_write(h, slot, p, pos)
        probs = np.zeros((H, L))
        if debug:
            loss = 0.0
            for h in range(H):
                full = attn.step(h, p, np.arange(p + 1))
                held = np.nonzero(pos[h] >= 0)[0]
                probs[h, held] = full[pos[h, held]]
                loss += 1.0 - probs[h].sum()
            losses.append(loss / H)
        elif policy.needs_probs:
            for h in range(H):
                held = np.nonzero(pos[h] >= 0)[0]
                key_pos = list(pos[h, held]) + ([p] if slots[h] is None else [])
                probs[h, held] = attn.step(h, p, key_pos)[:len(held)]
        policy.update(probs, pos)
        steps.append(snapshot())
    return {"name": name, "positions": steps, "losses": losses if debug else []}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--in", dest="inp", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    try:
        try:
            with open(args.inp) as f:
                scenarios = json.load(f)
        except (OSError, ValueError) as e:
            raise BadInput("cannot read %s: %s" % (args.inp, e))
        if not isinstance(scenarios, list):
            raise BadInput("input must be a JSON list of scenarios")
        results = []
        for i, sc in enumerate(scenarios):
            try:
                results.append(simulate(sc))
            except (KeyError, TypeError, AttributeError) as e:
                raise BadInput("scenario %d is malformed: %r" % (i, e))
    except BadInput as e:
        print("policy_reference: %s" % e, file=sys.stderr)
        return 2
    with open(args.out, "w") as f:
        json.dump(results, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
