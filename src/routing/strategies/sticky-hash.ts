// A small, fast, non-cryptographic hash for sticky routing. Stickiness needs a value that is the
// same on every replica and every restart for the same (route, key, target), and that looks uniform;
// it does not need to resist an adversary (a user who games it only picks among allowed targets).
// node:crypto would do, but a createHash per target costs about a microsecond; this costs tens of
// nanoseconds and allocates nothing.
//
// Construction: two independent 32-bit lanes over the UTF-16 code units, each string followed by a
// 0 terminator so ("ab","c") and ("a","bc") differ.
//   lane A: FNV-1a (xor, multiply by the 32-bit FNV prime 16777619).
//   lane B: xor, multiply by 0x9e3779b1 (odd, from the golden ratio), rotate left 13. The rotate
//           feeds high bits back into low ones, which multiplication alone never does.
// Both lanes end with the MurmurHash3 32-bit finaliser (xor-shift / multiply rounds, constants
// 0x85ebca6b and 0xc2b2ae35) so every input bit affects every output bit; plain FNV mixes short,
// similar ids such as "user-1" / "user-2" poorly in the high bits, which would bias the split.
// The lanes give 32 + 21 = 53 bits, the most a double holds exactly.
//
// Changing anything here reassigns every sticky user once: treat the constants as a wire format.

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const LANE_B_OFFSET = 0x2545f491;
const LANE_B_MUL = 0x9e3779b1;
const TWO_POW_21 = 2 ** 21;
const TWO_POW_53 = 2 ** 53;

export interface LaneState {
  a: number;
  b: number;
}

export function initialState(): LaneState {
  return { a: FNV_OFFSET, b: LANE_B_OFFSET };
}

/** Back to the initial state, so a state object can be reused without allocating. */
export function resetState(state: LaneState): void {
  state.a = FNV_OFFSET;
  state.b = LANE_B_OFFSET;
}

/** Absorbs `s` and a terminator into `state` (in place). */
export function absorb(state: LaneState, s: string): void {
  let a = state.a;
  let b = state.b;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 0;
    a = Math.imul(a ^ c, FNV_PRIME);
    b = Math.imul(b ^ c, LANE_B_MUL);
    b = (b << 13) | (b >>> 19);
  }
  state.a = a;
  state.b = b;
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A uniform value in the open interval (0, 1) from the state; never 0, so log(u) is finite. */
export function unitInterval(state: LaneState): number {
  const a = fmix32(state.a);
  // Folding lane A into B makes the low bits depend on both lanes, not on B alone.
  const b = fmix32(state.b ^ Math.imul(a, 0x27d4eb2f));
  const bits53 = a * TWO_POW_21 + (b >>> 11);
  return (bits53 + 0.5) / TWO_POW_53;
}
