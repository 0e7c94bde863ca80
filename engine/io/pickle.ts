/**
 * A restricted unpickler for PyTorch checkpoints. It reads the pickle opcodes `torch.save` and
 * CPython emit for data (protocols 2–5) and builds plain values only: null, booleans, numbers
 * (bigint beyond 2^53), strings, bytes, arrays (lists; sets as arrays), `Tuple`s and `PyDict`s.
 * A global is looked up in a table the caller passes (module and name → TypeScript
 * implementation or inert value); any other global — the way a malicious pickle runs code
 * (`os.system`, `builtins.eval`, `getattr`) — is refused before anything is called. Nothing is
 * ever executed: REDUCE, NEWOBJ and INST only call those TypeScript implementations, and BUILD
 * only fills dict attributes (or stores the state of an inert `PyObject`).
 *
 * Opcode semantics follow CPython's Lib/pickle.py (`_Unpickler`) and pickletools.py.
 */
import { BadInputError } from '../errors';

/** A Python tuple (kept apart from lists so persistent ids and call arguments can be told apart). */
export class Tuple {
  constructor(readonly items: unknown[]) {}
}

/** A Python dict or OrderedDict: keys in insertion order; `attrs` holds instance state set by BUILD. */
export class PyDict {
  readonly map = new Map<unknown, unknown>();
  readonly attrs = new Map<string, unknown>();
}

/**
 * An instance of an allowed class kept as inert data: the caller's global for the class returns
 * one (NEWOBJ / REDUCE), and BUILD stores the state it is given as is, for the caller to check.
 */
export class PyObject {
  state: unknown = undefined;
  constructor(readonly qualified: string) {}
}

/** Turns a persistent id (PyTorch: a storage reference) into a value. */
export type PersistentResolver = (pid: unknown) => unknown;

/** An allowed callable global: receives the call's positional arguments. */
export type PyCallable = (args: unknown[]) => unknown;

export interface UnpickleOptions {
  /** Names the file in errors. */
  file: string;
  persistentLoad: PersistentResolver;
  /** Allowed globals by "module name" (as pickletools prints them): a callable or an inert value. */
  globals: Readonly<Record<string, PyCallable | object>>;
}

export function unpickle(data: Uint8Array, opts: UnpickleOptions): unknown {
  return new Unpickler(Buffer.from(data.buffer, data.byteOffset, data.byteLength), opts).load();
}

/** The one-line refusal for a global outside the table. */
export function refusedGlobal(file: string, qualified: string): BadInputError {
  return new BadInputError(`${file}: refused to load: the pickle calls '${qualified}' — only tensors and plain containers are allowed (is this file a checkpoint from an untrusted source?)`);
}

const HIGHEST_PROTOCOL = 5;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

class Unpickler {
  private pos = 0;
  private stack: unknown[] = [];
  /** Stacks saved by MARK (CPython's metastack): the items since the mark are `this.stack`. */
  private readonly metastack: unknown[][] = [];
  private readonly memo = new Map<number, unknown>();

  constructor(private readonly data: Buffer, private readonly opts: UnpickleOptions) {}

  load(): unknown {
    for (;;) {
      const op = this.u8();
      if (op === 0x2e) return this.pop(); // STOP
      this.step(op);
    }
  }

  private fail(m: string): never {
    throw new BadInputError(`${this.opts.file}: ${m}`);
  }

  private corrupt(what: string): never {
    return this.fail(`corrupt pickle data (${what} at byte ${this.pos}); the checkpoint is damaged`);
  }

  // ---- reading the byte stream ----
  private bytes(n: number): Buffer {
    if (n < 0 || this.pos + n > this.data.length) this.fail('truncated pickle data (the checkpoint is incomplete; save or copy it again)');
    const b = this.data.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  private u8(): number {
    return this.bytes(1)[0];
  }
  private u16(): number {
    return this.bytes(2).readUInt16LE(0);
  }
  private u32(): number {
    return this.bytes(4).readUInt32LE(0);
  }
  private u64(): number {
    const v = this.bytes(8).readBigUInt64LE(0);
    if (v > MAX_SAFE) this.corrupt('length field out of range');
    return Number(v);
  }
  private line(): string {
    const end = this.data.indexOf(0x0a, this.pos);
    if (end < 0) this.fail('truncated pickle data (missing newline; the checkpoint is incomplete)');
    const s = this.data.subarray(this.pos, end).toString('utf8');
    this.pos = end + 1;
    return s;
  }

  // ---- the stack ----
  private pop(): unknown {
    if (!this.stack.length) this.corrupt('stack underflow');
    return this.stack.pop();
  }
  private top(): unknown {
    if (!this.stack.length) this.corrupt('stack underflow');
    return this.stack[this.stack.length - 1];
  }
  private mark(): void {
    this.metastack.push(this.stack);
    this.stack = [];
  }
  private popMark(): unknown[] {
    const items = this.stack;
    const saved = this.metastack.pop();
    if (!saved) this.corrupt('no MARK');
    this.stack = saved!;
    return items;
  }
  private push(v: unknown): void {
    this.stack.push(v);
  }

  private step(op: number): void {
    if (this.scalar(op) || this.container(op) || this.memoOrGlobal(op)) return;
    this.fail(`refused to load: unsupported pickle opcode 0x${op.toString(16)} at byte ${this.pos - 1} (only tensors and plain containers are allowed; re-save the checkpoint with torch.save)`);
  }

  /** Framing, marks and scalar values. */
  private scalar(op: number): boolean {
    switch (op) {
      case 0x80: { // PROTO
        const v = this.u8();
        if (v > HIGHEST_PROTOCOL) this.fail(`pickle protocol ${v} is newer than this reader (≤ ${HIGHEST_PROTOCOL}); re-save with pickle_protocol=2`);
        return true;
      }
      case 0x95: this.u64(); return true; // FRAME: only a read-ahead hint
      case 0x28: this.mark(); return true; // MARK
      case 0x30: if (this.stack.length) this.pop(); else this.popMark(); return true; // POP (of an empty frame: its MARK, as CPython does)
      case 0x31: this.popMark(); return true; // POP_MARK
      case 0x32: this.push(this.top()); return true; // DUP
      case 0x4e: this.push(null); return true; // NONE
      case 0x88: this.push(true); return true; // NEWTRUE
      case 0x89: this.push(false); return true; // NEWFALSE
      case 0x4a: this.push(this.bytes(4).readInt32LE(0)); return true; // BININT
      case 0x4b: this.push(this.u8()); return true; // BININT1
      case 0x4d: this.push(this.u16()); return true; // BININT2
      case 0x8a: this.push(this.long(this.bytes(this.u8()))); return true; // LONG1
      case 0x8b: this.push(this.long(this.bytes(this.u32()))); return true; // LONG4
      case 0x49: this.push(this.intLine()); return true; // INT (text)
      case 0x4c: this.push(this.intText(this.line().replace(/L$/, ''))); return true; // LONG (text)
      case 0x47: this.push(this.bytes(8).readDoubleBE(0)); return true; // BINFLOAT (big-endian)
      case 0x46: this.push(parseFloat(this.line())); return true; // FLOAT (text)
      case 0x58: this.push(this.bytes(this.u32()).toString('utf8')); return true; // BINUNICODE
      case 0x8c: this.push(this.bytes(this.u8()).toString('utf8')); return true; // SHORT_BINUNICODE
      case 0x8d: this.push(this.bytes(this.u64()).toString('utf8')); return true; // BINUNICODE8
      case 0x54: this.push(this.bytes(this.int32Length()).toString('latin1')); return true; // BINSTRING (Python 2 str)
      case 0x55: this.push(this.bytes(this.u8()).toString('latin1')); return true; // SHORT_BINSTRING
      case 0x42: this.push(Uint8Array.from(this.bytes(this.u32()))); return true; // BINBYTES
      case 0x43: this.push(Uint8Array.from(this.bytes(this.u8()))); return true; // SHORT_BINBYTES
      case 0x8e: this.push(Uint8Array.from(this.bytes(this.u64()))); return true; // BINBYTES8
      case 0x96: this.push(Uint8Array.from(this.bytes(this.u64()))); return true; // BYTEARRAY8
      default: return false;
    }
  }

  /** Lists, tuples, dicts, sets. */
  private container(op: number): boolean {
    switch (op) {
      case 0x5d: this.push([]); return true; // EMPTY_LIST
      case 0x6c: this.push(this.popMark()); return true; // LIST
      case 0x61: { const v = this.pop(); this.appendTo(this.top(), [v]); return true; } // APPEND
      case 0x65: { const items = this.popMark(); this.appendTo(this.top(), items); return true; } // APPENDS
      case 0x29: this.push(new Tuple([])); return true; // EMPTY_TUPLE
      case 0x74: this.push(new Tuple(this.popMark())); return true; // TUPLE
      case 0x85: this.push(new Tuple([this.pop()])); return true; // TUPLE1
      case 0x86: { const b = this.pop(), a = this.pop(); this.push(new Tuple([a, b])); return true; } // TUPLE2
      case 0x87: { const c = this.pop(), b = this.pop(), a = this.pop(); this.push(new Tuple([a, b, c])); return true; } // TUPLE3
      case 0x7d: this.push(new PyDict()); return true; // EMPTY_DICT
      case 0x64: { const d = new PyDict(); this.setItems(d, this.popMark()); this.push(d); return true; } // DICT
      case 0x73: { const v = this.pop(), k = this.pop(); this.setItems(this.top(), [k, v]); return true; } // SETITEM
      case 0x75: { const items = this.popMark(); this.setItems(this.top(), items); return true; } // SETITEMS
      case 0x8f: this.push([]); return true; // EMPTY_SET (members as an array)
      case 0x90: { const items = this.popMark(); this.appendTo(this.top(), items); return true; } // ADDITEMS
      case 0x91: this.push(this.popMark()); return true; // FROZENSET
      default: return false;
    }
  }

  /** Memo, globals, calls, persistent ids. */
  private memoOrGlobal(op: number): boolean {
    switch (op) {
      case 0x71: this.memo.set(this.u8(), this.top()); return true; // BINPUT
      case 0x72: this.memo.set(this.u32(), this.top()); return true; // LONG_BINPUT
      case 0x70: this.memo.set(this.index(this.line()), this.top()); return true; // PUT
      case 0x94: this.memo.set(this.memo.size, this.top()); return true; // MEMOIZE
      case 0x68: this.push(this.get(this.u8())); return true; // BINGET
      case 0x6a: this.push(this.get(this.u32())); return true; // LONG_BINGET
      case 0x67: this.push(this.get(this.index(this.line()))); return true; // GET
      case 0x63: { const mod = this.line(), name = this.line(); this.push(this.global(mod, name)); return true; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = this.pop(), mod = this.pop();
        if (typeof mod !== 'string' || typeof name !== 'string') this.corrupt('STACK_GLOBAL without a module and name');
        this.push(this.global(mod as string, name as string));
        return true;
      }
      case 0x52: { const args = this.pop(), fn = this.pop(); this.push(this.call(fn, args)); return true; } // REDUCE
      case 0x81: { const args = this.pop(), cls = this.pop(); this.push(this.call(cls, args)); return true; } // NEWOBJ
      case 0x92: { // NEWOBJ_EX: keyword arguments are not part of any allowed call
        const kwargs = this.pop(), args = this.pop(), cls = this.pop();
        if (!(kwargs instanceof PyDict) || kwargs.map.size) this.fail('refused to load: the pickle passes keyword arguments to a constructor');
        this.push(this.call(cls, args));
        return true;
      }
      case 0x69: { const mod = this.line(), name = this.line(); const fn = this.global(mod, name); this.push(this.call(fn, new Tuple(this.popMark()))); return true; } // INST
      case 0x6f: { const [cls, ...args] = this.popMark(); this.push(this.call(cls, new Tuple(args))); return true; } // OBJ
      case 0x62: { const state = this.pop(); this.build(this.top(), state); return true; } // BUILD
      case 0x51: this.push(this.opts.persistentLoad(this.pop())); return true; // BINPERSID
      case 0x50: this.push(this.opts.persistentLoad(this.line())); return true; // PERSID
      default: return false;
    }
  }

  // ---- values ----
  /** Little-endian two's complement (LONG1/LONG4); beyond 2^53 it stays a bigint. */
  private long(b: Buffer): number | bigint {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= -MAX_SAFE && v <= MAX_SAFE ? Number(v) : v;
  }

  private intText(s: string): number | bigint {
    if (!/^[+-]?\d+$/.test(s.trim())) this.corrupt(`bad integer '${s}'`);
    const v = BigInt(s.trim());
    return v >= -MAX_SAFE && v <= MAX_SAFE ? Number(v) : v;
  }

  /** Protocol 0/1 INT: "01" and "00" are how Python 2 wrote True and False. */
  private intLine(): number | bigint | boolean {
    const l = this.line();
    if (l === '00') return false;
    if (l === '01') return true;
    return this.intText(l);
  }

  private int32Length(): number {
    const n = this.bytes(4).readInt32LE(0);
    if (n < 0) this.corrupt('negative length');
    return n;
  }

  private index(s: string): number {
    const v = this.intText(s);
    if (typeof v !== 'number' || v < 0) this.corrupt(`bad memo index '${s}'`);
    return v as number;
  }

  private get(i: number): unknown {
    if (!this.memo.has(i)) this.corrupt(`memo entry ${i} is missing`);
    return this.memo.get(i);
  }

  private appendTo(list: unknown, items: unknown[]): void {
    if (!Array.isArray(list)) this.corrupt('APPEND to something that is not a list');
    (list as unknown[]).push(...items);
  }

  private setItems(d: unknown, items: unknown[]): void {
    if (!(d instanceof PyDict)) this.corrupt('SETITEM on something that is not a dict');
    if (items.length % 2) this.corrupt('a key without a value');
    for (let i = 0; i < items.length; i += 2) (d as PyDict).map.set(items[i], items[i + 1]);
  }

  // ---- the guarded part: globals, calls, state ----
  private global(mod: string, name: string): unknown {
    const key = `${mod} ${name}`;
    if (!Object.prototype.hasOwnProperty.call(this.opts.globals, key)) throw refusedGlobal(this.opts.file, `${mod}.${name}`);
    return this.opts.globals[key];
  }

  private call(fn: unknown, args: unknown): unknown {
    if (typeof fn !== 'function') this.fail(`refused to load: the pickle calls ${describe(fn)} — only tensors and plain containers are allowed (is this file a checkpoint from an untrusted source?)`);
    if (!(args instanceof Tuple)) this.corrupt('call arguments are not a tuple');
    return (fn as PyCallable)((args as Tuple).items);
  }

  /** BUILD: obj.__setstate__(state) or obj.__dict__.update(state). Only dicts (and inert PyObjects) take state here. */
  private build(target: unknown, state: unknown): void {
    if (target instanceof PyObject) {
      target.state = state;
      return;
    }
    if (state === null) return;
    // (dict state, slot state) as object.__reduce_ex__ writes it
    const [dictState, slotState] = state instanceof Tuple && state.items.length === 2 ? state.items : [state, null];
    if (target instanceof PyDict && (dictState === null || dictState instanceof PyDict) && (slotState === null || slotState instanceof PyDict)) {
      for (const part of [dictState, slotState]) {
        if (part instanceof PyDict) for (const [k, v] of part.map) target.attrs.set(String(k), v);
      }
      return;
    }
    this.fail(`refused to load: the pickle sets state on ${describe(target)} — only tensors and plain containers are allowed (is this file a checkpoint from an untrusted source?)`);
  }
}

function describe(v: unknown): string {
  if (v === null) return 'None';
  if (v instanceof Tuple) return 'a tuple';
  if (v instanceof PyDict) return 'a dict';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v} value`;
}
