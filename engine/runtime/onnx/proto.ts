/**
 * The few ONNX protobuf messages a traced graph needs (onnx/onnx.proto3: ModelProto, GraphProto,
 * NodeProto, AttributeProto, TensorProto, ValueInfoProto), written by a minimal protobuf encoder.
 * Field numbers are onnx.proto3's. Weights go in `raw_data` (little-endian, as ONNX specifies).
 */

/** ONNX TensorProto.DataType values used here. */
export const enum OnnxType {
  FLOAT = 1,
  UINT8 = 2,
  INT8 = 3,
  INT32 = 6,
  INT64 = 7,
  BOOL = 9,
  FLOAT16 = 10,
}

/** A growable byte buffer with protobuf's varint writers (for the small parts of a message). */
class Writer {
  buf = new Uint8Array(64);
  len = 0;

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  varint(v: number | bigint): void {
    if (typeof v === 'number' && v >= 0 && v <= Number.MAX_SAFE_INTEGER) return this.uvarint(v);
    let x = BigInt.asUintN(64, BigInt(v));
    this.ensure(10);
    while (x >= 0x80n) {
      this.buf[this.len++] = Number(x & 0x7fn) | 0x80;
      x >>= 7n;
    }
    this.buf[this.len++] = Number(x);
  }

  uvarint(v: number): void {
    this.ensure(10);
    while (v >= 0x80) {
      this.buf[this.len++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.len++] = v;
  }

  tag(field: number, wire: number): void {
    this.uvarint(field * 8 + wire);
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  f32(v: number): void {
    this.ensure(4);
    new DataView(this.buf.buffer, this.buf.byteOffset + this.len, 4).setFloat32(0, v, true);
    this.len += 4;
  }

  take(): Uint8Array {
    const out = this.buf.subarray(0, this.len);
    this.buf = new Uint8Array(64);
    this.len = 0;
    return out;
  }
}

const utf8 = new TextEncoder();
/** Payloads at least this long are kept by reference, not copied, until the final `bytes()`. */
const BY_REFERENCE = 4096;

/**
 * A message under construction, as a list of byte parts: weights (megabytes of `raw_data`) are
 * referenced, not copied, so a whole model is copied once, into the final buffer.
 */
export class Msg {
  private readonly parts: Uint8Array[] = [];
  private readonly w = new Writer();
  private size = 0;

  private flush(): void {
    if (!this.w.len) return;
    this.size += this.w.len;
    this.parts.push(this.w.take());
  }
  get length(): number {
    return this.size + this.w.len;
  }
  int(field: number, v: number | bigint): this {
    this.w.tag(field, 0);
    this.w.varint(v);
    return this;
  }
  float(field: number, v: number): this {
    this.w.tag(field, 5);
    this.w.f32(v);
    return this;
  }
  str(field: number, s: string): this {
    return this.raw(field, utf8.encode(s));
  }
  raw(field: number, b: Uint8Array): this {
    this.w.tag(field, 2);
    this.w.uvarint(b.length);
    if (b.length < BY_REFERENCE) this.w.bytes(b);
    else {
      this.flush();
      this.parts.push(b);
      this.size += b.length;
    }
    return this;
  }
  msg(field: number, m: Msg): this {
    this.w.tag(field, 2);
    this.w.uvarint(m.length);
    this.flush();
    m.flush();
    this.parts.push(...m.parts);
    this.size += m.size;
    return this;
  }
  packedInts(field: number, vs: readonly (number | bigint)[]): this {
    const inner = new Writer();
    for (const v of vs) inner.varint(v);
    return this.raw(field, inner.take());
  }
  packedFloats(field: number, vs: readonly number[]): this {
    const inner = new Writer();
    for (const v of vs) inner.f32(v);
    return this.raw(field, inner.take());
  }
  bytes(): Uint8Array {
    this.flush();
    const out = new Uint8Array(this.size);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

export type AttrValue = number | string | number[] | { floats: number[] } | { float: number } | { tensor: Msg } | { graph: Msg };

/** AttributeProto: name=1, f=2, i=3, s=4, t=5, g=6, floats=7, ints=8, type=20. */
export function attribute(name: string, value: AttrValue): Msg {
  const a = new Msg().str(1, name);
  if (typeof value === 'number') return a.int(3, value).int(20, 2); // INT
  if (typeof value === 'string') return a.str(4, value).int(20, 3); // STRING
  if (Array.isArray(value)) return a.packedInts(8, value).int(20, 7); // INTS
  if ('floats' in value) return a.packedFloats(7, value.floats).int(20, 6); // FLOATS
  if ('float' in value) return a.float(2, value.float).int(20, 1); // FLOAT
  if ('tensor' in value) return a.msg(5, value.tensor).int(20, 4); // TENSOR
  return a.msg(6, value.graph).int(20, 5); // GRAPH
}

/** NodeProto: input=1, output=2, name=3, op_type=4, attribute=5, domain=7. */
export function node(op: string, inputs: string[], outputs: string[], attrs: Record<string, AttrValue> = {}, name = '', domain = ''): Msg {
  const n = new Msg();
  for (const i of inputs) n.str(1, i);
  for (const o of outputs) n.str(2, o);
  if (name) n.str(3, name);
  n.str(4, op);
  for (const [k, v] of Object.entries(attrs)) n.msg(5, attribute(k, v));
  if (domain) n.str(7, domain);
  return n;
}

/** TensorProto: dims=1, data_type=2, name=8, raw_data=9. */
export function tensorProto(name: string, type: OnnxType, dims: readonly number[], raw: Uint8Array): Msg {
  const t = new Msg();
  if (dims.length) t.packedInts(1, dims);
  t.int(2, type);
  if (name) t.str(8, name);
  t.raw(9, raw);
  return t;
}

/** ValueInfoProto with a tensor type; a string dim is a named free dimension (dim_param). */
export function valueInfo(name: string, type: OnnxType, dims: readonly (number | string | null)[] | null): Msg {
  const tensorType = new Msg().int(1, type);
  if (dims) {
    const shape = new Msg();
    for (const d of dims) {
      const dim = new Msg();
      if (typeof d === 'number') dim.int(1, d);
      else if (typeof d === 'string') dim.str(2, d);
      shape.msg(1, dim);
    }
    tensorType.msg(2, shape);
  }
  return new Msg().str(1, name).msg(2, new Msg().msg(1, tensorType));
}

/** GraphProto: node=1, name=2, initializer=5, input=11, output=12. */
export function graph(name: string, nodes: Msg[], initializers: Msg[], inputs: Msg[], outputs: Msg[]): Msg {
  const g = new Msg();
  for (const n of nodes) g.msg(1, n);
  g.str(2, name);
  for (const t of initializers) g.msg(5, t);
  for (const i of inputs) g.msg(11, i);
  for (const o of outputs) g.msg(12, o);
  return g;
}

/** ModelProto: ir_version=1, producer_name=2, producer_version=3, graph=7, opset_import=8. */
export function model(g: Msg, opset: number, producer: string, version: string): Uint8Array {
  return new Msg()
    .int(1, 8) // IR version 8 (opset 17 era)
    .str(2, producer)
    .str(3, version)
    .msg(7, g)
    .msg(8, new Msg().str(1, '').int(2, opset))
    .bytes();
}
