/**
 * A restricted unpickler for PyTorch checkpoints. It implements the pickle opcodes `torch.save`
 * uses (protocols 2–5) and builds only plain values: None, bools, numbers, strings, bytes, lists,
 * tuples, dicts, and tensors through a fixed set of allowed globals. Any other global — the way a
 * malicious pickle runs code (`os.system`, `builtins.eval`, …) — is refused before anything is
 * called. Nothing is ever executed: REDUCE, NEWOBJ and BUILD apply only our own TypeScript
 * implementations of the allowed callables.
 */
import { BadInputError } from '../errors';

export class Tuple {
  constructor(readonly items: unknown[]) {}
}
export class PyDict {
  readonly map = new Map<unknown, unknown>();
}
/** A storage type global such as torch.FloatStorage. */
export class StorageType {
  constructor(readonly name: string) {}
}
/** What a persistent id resolves to; the loader turns it into bytes. */
export interface PersistentResolver {
  (pid: unknown): unknown;
}
type Callable = (args: unknown[]) => unknown;

export interface UnpickleOptions {
  file: string;
  persistentLoad: PersistentResolver;
  /** Allowed globals: "module name" → implementation. */
  globals: Record<string, Callable | StorageType>;
}

const MARK = Symbol('mark');

export function unpickle(data: Buffer, opts: UnpickleOptions): unknown {
  return new Unpickler(data, opts).load();
}

class Unpickler {
  private pos = 0;
  private stack: unknown[] = [];
  private readonly marks: number[] = [];
  private readonly memo = new Map<number, unknown>();

  constructor(private readonly data: Buffer, private readonly opts: UnpickleOptions) {}

  private fail(m: string): never {
    throw new BadInputError(`${this.opts.file}: ${m}`);
  }

  private bytes(n: number): Buffer {
    if (n < 0 || this.pos + n > this.data.length) this.fail('truncated pickle data (the checkpoint is incomplete)');
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
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail('length field too large');
    return Number(v);
  }
  private line(): string {
    const end = this.data.indexOf(0x0a, this.pos);
    if (end < 0) this.fail('truncated pickle data (missing newline)');
    const s = this.data.subarray(this.pos, end).toString('latin1');
    this.pos = end + 1;
    return s;
  }
  private pop(): unknown {
    if (!this.stack.length) this.fail('corrupt pickle (stack underflow)');
    return this.stack.pop();
  }
  private top(): unknown {
    if (!this.stack.length) this.fail('corrupt pickle (stack underflow)');
    return this.stack[this.stack.length - 1];
  }
  private popMark(): unknown[] {
    const m = this.marks.pop();
    if (m === undefined) this.fail('corrupt pickle (no mark)');
    const items = this.stack.slice(m);
    this.stack.length = m!;
    return items;
  }

  load(): unknown {
    for (;;) {
      const op = this.u8();
      if (op === 0x2e) return this.pop(); // STOP
      this.step(op);
    }
  }

  private step(op: number): void {
    const s = this.stack;
    switch (op) {
      case 0x80: this.u8(); return; // PROTO
      case 0x95: this.u64(); return; // FRAME (framing is only a hint)
      case 0x28: this.marks.push(s.length); return; // MARK
      case 0x30: this.pop(); return; // POP
      case 0x31: this.popMark(); return; // POP_MARK
      case 0x32: s.push(this.top()); return; // DUP
      case 0x4e: s.push(null); return; // NONE
      case 0x88: s.push(true); return; // NEWTRUE
      case 0x89: s.push(false); return; // NEWFALSE
      case 0x4a: s.push(this.bytes(4).readInt32LE(0)); return; // BININT
      case 0x4b: s.push(this.u8()); return; // BININT1
      case 0x4d: s.push(this.u16()); return; // BININT2
      case 0x8a: s.push(this.long(this.u8())); return; // LONG1
      case 0x8b: s.push(this.long(this.u32())); return; // LONG4
      case 0x49: s.push(this.intLine()); return; // INT
      case 0x4c: s.push(Number(this.line().replace(/L$/, ''))); return; // LONG (text)
      case 0x47: s.push(this.bytes(8).readDoubleBE(0)); return; // BINFLOAT
      case 0x46: s.push(parseFloat(this.line())); return; // FLOAT (text)
      case 0x58: s.push(this.bytes(this.u32()).toString('utf8')); return; // BINUNICODE
      case 0x8c: s.push(this.bytes(this.u8()).toString('utf8')); return; // SHORT_BINUNICODE
      case 0x8d: s.push(this.bytes(this.u64()).toString('utf8')); return; // BINUNICODE8
      case 0x54: s.push(this.bytes(this.bytes(4).readInt32LE(0)).toString('latin1')); return; // BINSTRING
      case 0x55: s.push(this.bytes(this.u8()).toString('latin1')); return; // SHORT_BINSTRING
      case 0x42: s.push(Uint8Array.from(this.bytes(this.u32()))); return; // BINBYTES
      case 0x43: s.push(Uint8Array.from(this.bytes(this.u8()))); return; // SHORT_BINBYTES
      case 0x8e: s.push(Uint8Array.from(this.bytes(this.u64()))); return; // BINBYTES8
      case 0x96: s.push(Uint8Array.from(this.bytes(this.u64()))); return; // BYTEARRAY8
      case 0x5d: s.push([]); return; // EMPTY_LIST
      case 0x6c: s.push(this.popMark()); return; // LIST
      case 0x61: this.appendTo(this.stackItem(-2), [this.pop()]); return; // APPEND (pops value, list stays)
      case 0x65: { const items = this.popMark(); this.appendTo(this.top(), items); return; } // APPENDS
      case 0x29: s.push(new Tuple([])); return; // EMPTY_TUPLE
      case 0x74: s.push(new Tuple(this.popMark())); return; // TUPLE
      case 0x85: s.push(new Tuple([this.pop()])); return; // TUPLE1
      case 0x86: { const b = this.pop(), a = this.pop(); s.push(new Tuple([a, b])); return; } // TUPLE2
      case 0x87: { const c = this.pop(), b = this.pop(), a = this.pop(); s.push(new Tuple([a, b, c])); return; } // TUPLE3
      case 0x7d: s.push(new PyDict()); return; // EMPTY_DICT
      case 0x64: { const d = new PyDict(); this.setItems(d, this.popMark()); s.push(d); return; } // DICT
      case 0x73: { const v = this.pop(), k = this.pop(); this.setItems(this.top(), [k, v]); return; } // SETITEM
      case 0x75: { const items = this.popMark(); this.setItems(this.top(), items); return; } // SETITEMS
      case 0x8f: s.push([]); return; // EMPTY_SET (a plain list of members)
      case 0x90: { const items = this.popMark(); this.appendTo(this.top(), items); return; } // ADDITEMS
      case 0x91: s.push(this.popMark()); return; // FROZENSET
      case 0x63: { const mod = this.line(), name = this.line(); s.push(this.global(mod, name)); return; } // GLOBAL
      case 0x93: { const name = this.pop(), mod = this.pop(); s.push(this.global(String(mod), String(name))); return; } // STACK_GLOBAL
      case 0x52: { const args = this.pop(), fn = this.pop(); s.push(this.call(fn, args)); return; } // REDUCE
      case 0x81: { const args = this.pop(), cls = this.pop(); s.push(this.call(cls, args)); return; } // NEWOBJ
      case 0x92: { this.pop(); const args = this.pop(), cls = this.pop(); s.push(this.call(cls, args)); return; } // NEWOBJ_EX
      case 0x62: { const state = this.pop(); this.build(this.top(), state); return; } // BUILD
      case 0x71: this.memo.set(this.u8(), this.top()); return; // BINPUT
      case 0x72: this.memo.set(this.u32(), this.top()); return; // LONG_BINPUT
      case 0x94: this.memo.set(this.memo.size, this.top()); return; // MEMOIZE
      case 0x70: this.memo.set(Number(this.line()), this.top()); return; // PUT
      case 0x68: s.push(this.get(this.u8())); return; // BINGET
      case 0x6a: s.push(this.get(this.u32())); return; // LONG_BINGET
      case 0x67: s.push(this.get(Number(this.line()))); return; // GET
      case 0x51: s.push(this.opts.persistentLoad(this.pop())); return; // BINPERSID
      case 0x50: s.push(this.opts.persistentLoad(this.line())); return; // PERSID
      default:
        this.fail(`refused to load: unsupported pickle opcode 0x${op.toString(16)} at byte ${this.pos - 1} (only tensors and plain containers are allowed)`);
    }
  }

  private stackItem(i: number): unknown {
    const v = this.stack[this.stack.length + i];
    if (v === undefined) this.fail('corrupt pickle (stack underflow)');
    return v;
  }

  private long(n: number): number {
    const b = this.bytes(n);
    if (n === 0) return 0;
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) this.fail(`integer ${v} is too large`);
    return Number(v);
  }

  private intLine(): number | boolean {
    const l = this.line();
    if (l === '00') return false;
    if (l === '01') return true;
    return Number(l);
  }

  private get(i: number): unknown {
    if (!this.memo.has(i)) this.fail(`corrupt pickle (memo ${i} missing)`);
    return this.memo.get(i);
  }

  private appendTo(list: unknown, items: unknown[]): void {
    if (!Array.isArray(list)) this.fail('corrupt pickle (APPEND to a non-list)');
    (list as unknown[]).push(...items);
  }

  private setItems(d: unknown, items: unknown[]): void {
    if (!(d instanceof PyDict)) this.fail('corrupt pickle (SETITEM on a non-dict)');
    for (let i = 0; i + 1 < items.length; i += 2) (d as PyDict).map.set(items[i], items[i + 1]);
  }

  private global(mod: string, name: string): unknown {
    const key = `${mod} ${name}`;
    const g = this.opts.globals[key];
    if (!g) {
      this.fail(`refused to load: the pickle calls '${mod}.${name}' — only tensors and plain containers are allowed (is this checkpoint from an untrusted source?)`);
    }
    return g;
  }

  private call(fn: unknown, args: unknown): unknown {
    if (typeof fn !== 'function') this.fail('refused to load: the pickle calls something that is not an allowed function');
    if (!(args instanceof Tuple)) this.fail('corrupt pickle (call arguments are not a tuple)');
    return (fn as Callable)((args as Tuple).items);
  }

  private build(target: unknown, state: unknown): void {
    if (state === null || (state instanceof PyDict && state.map.size === 0)) return;
    if (target instanceof PyDict && state instanceof PyDict) {
      for (const [k, v] of state.map) target.map.set(k, v);
      return;
    }
    if (target && typeof target === 'object' && 'shape' in target) return; // tensor state (hooks, metadata): not needed
    this.fail('refused to load: the pickle sets state on an object that is not a plain container');
  }
}
