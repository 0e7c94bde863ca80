/**
 * parameter-golf's quantized model artifact (`final_model.int6.ptz`), as `serialize` in the
 * record #1784 `train_gpt.py` of openai/parameter-golf writes it and `deserialize` reads it back:
 *
 *   brotli( b"BSHF" + stride byte + byte-shuffled( torch.save({"w": tensors, "m": kinds}) ) )
 *
 * The shuffle splits the zip's bytes into `stride` interleaved planes (positions ≡ 0 mod stride
 * first, then ≡ 1, …; with n bytes, plane p holds ⌊n/stride⌋ + (p < n mod stride) of them). The
 * names in "w"/"m" are the unbanked ones (`blocks.{i}.attn.c_q.weight`, …); each flat tensor is
 * stored per its kind in "m": "passthrough (float16)" as an fp16 tensor, "gptq (intB)" and
 * "int8_per_row" as `<name>.q` (int8) and `<name>.scale` (fp16, one per leading-axis row, or a
 * scalar). Reading undoes each step, dequantizes as their `dequantize_mixed` does
 * (`q.float() * scale.float()` per row, in float32) and rebanks as `_rebank_state_dict` does, so
 * `stateDict` has the float model's names and shapes (`qo_bank` [2L,C,C] = Wq of every block, then
 * Wout; `kv_bank` [2L,kv,C] = Wk, then Wv; `mlp_up_bank` [L,4C,C]; `mlp_down_bank` [L,C,4C]).
 *
 * On purpose stricter than their reader: a payload without the BSHF header is refused (their
 * unshuffle passes such data through, but their writer always adds the header); an unknown kind
 * or a q outside its kind's range is refused (theirs would multiply anything). `tok_emb.weight`
 * stays float32, whereas their CUDA eval model holds it in bf16.
 */
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { BadInputError } from '../errors';
import { PyDict } from './pickle';
import { readInputFile } from './safetensors';
import { isFloatDtype, makeHostTensor, sizeOf, type HostTensor, type StorageDtype } from './tensor';
import { unpickleTorchArchive } from './torch';

export interface PtzInfo {
  /** Bytes of the artifact as stored (the brotli stream). */
  fileBytes: number;
  /** Bytes after brotli: the 5-byte BSHF header and the shuffled payload. */
  decompressedBytes: number;
  /** The shuffle's stride byte (their writer uses 2; below 2 means "not shuffled"). */
  shuffleStride: number;
  /** Bytes of the torch.save zip after un-shuffling. */
  zipBytes: number;
  /** Entries of "w" (a quantized tensor is two: `.q` and `.scale`). */
  storedTensors: number;
  /** Flat tensors per quantization kind, e.g. {"gptq (int6)": 30, "passthrough (float16)": 24, …}. */
  kinds: Record<string, number>;
  /** Physical blocks (L), read off the bank members. */
  numLayers: number;
  /** Model width C (columns of `blocks.0.attn.c_q.weight`). */
  modelDim: number;
  /** K/V width: kv heads × head_dim (rows of `blocks.0.attn.c_k.weight`). */
  kvDim: number;
  /** MLP hidden width (rows of `blocks.0.mlp.fc.weight`). */
  hiddenDim: number;
}

export interface PtzArtifact {
  /** The dequantized, rebanked float state dict: banks first, then the rest in "m" order. */
  stateDict: Map<string, HostTensor>;
  /** The artifact's "m" map: flat name → kind, in its pickled order. */
  quantMeta: Record<string, string>;
  info: PtzInfo;
}

export interface PtzReadOptions {
  /** Refuse an artifact that decompresses to more than this (default 1 GiB; the record's is ~35 MB). */
  maxDecompressedBytes?: number;
}

const DEFAULT_MAX_DECOMPRESSED = 2 ** 30;

export function readPtzArtifact(file: string, opts: PtzReadOptions = {}): PtzArtifact {
  return decodePtzArtifact(readInputFile(file), file, opts);
}

/** Decode an artifact's bytes; `file` names it in errors. */
export function decodePtzArtifact(blob: Buffer, file: string, opts: PtzReadOptions = {}): PtzArtifact {
  const name = path.basename(file);
  const raw = brotliDecompress(blob, name, opts.maxDecompressedBytes ?? DEFAULT_MAX_DECOMPRESSED);
  const { stride, bytes } = unshuffleBytes(raw, name);
  const { stored, meta, dtypeOf } = readQuantState(bytes, file);
  const flat = new Map<string, HostTensor>();
  for (const [tensorName, kind] of meta) flat.set(tensorName, dequantize(tensorName, kind, stored, dtypeOf, name));
  const { stateDict, dims } = rebank(flat, name);
  const kinds: Record<string, number> = {};
  for (const kind of meta.values()) kinds[kind] = (kinds[kind] ?? 0) + 1;
  return {
    stateDict,
    quantMeta: Object.fromEntries(meta),
    info: { fileBytes: blob.length, decompressedBytes: raw.length, shuffleStride: stride, zipBytes: bytes.length, storedTensors: stored.size, kinds, ...dims },
  };
}

// ---- brotli and the byte shuffle ----

const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
const ZIP_MAGIC = Buffer.from('PK\x03\x04', 'latin1');
const BSHF_MAGIC = Buffer.from('BSHF', 'latin1');

function brotliDecompress(blob: Buffer, name: string, maxBytes: number): Buffer {
  if (blob.length === 0) throw new BadInputError(`${name} is empty, not a brotli-compressed parameter-golf artifact (copy the .ptz that serialize() wrote again)`);
  // brotli has no magic number; name the look-alikes before the decoder's terse verdict
  if (startsWith(blob, XZ_MAGIC)) throw new BadInputError(`${name} is lzma-compressed (COMPRESSOR=lzma), not a brotli-compressed parameter-golf artifact: re-serialize with COMPRESSOR=brotli`);
  if (startsWith(blob, ZIP_MAGIC)) throw new BadInputError(`${name} is not a brotli-compressed parameter-golf artifact but a plain zip (a torch.save checkpoint?): load it as a .pt file`);
  try {
    return zlib.brotliDecompressSync(blob, { maxOutputLength: maxBytes });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') throw new BadInputError(`${name}: decompresses to more than ${maxBytes} bytes, far beyond a parameter-golf artifact (is it the right file?)`);
    // the decoder reports a stream that stops early as Z_BUF_ERROR ("unexpected end of file")
    if (code === 'Z_BUF_ERROR') throw new BadInputError(`${name} is truncated: its brotli stream ends early (copy the artifact again; a file that is not brotli at all can also end this way)`);
    throw new BadInputError(`${name} is not a brotli-compressed parameter-golf artifact (brotli: ${(e as Error).message}): give the .ptz that serialize() wrote with COMPRESSOR=brotli`);
  }
}

/**
 * Undo their `_byte_shuffle`: check `BSHF` + stride, then put the planes back. A stride below 2
 * means the payload was not shuffled (as their `_byte_unshuffle` reads it).
 */
export function unshuffleBytes(data: Uint8Array, name: string): { stride: number; bytes: Buffer } {
  if (data.length < 5 || !startsWith(data, BSHF_MAGIC)) {
    const head = Buffer.from(data.subarray(0, 4)).toString('hex').replace(/(..)(?!$)/g, '$1 ') || 'nothing';
    throw new BadInputError(`${name}: after brotli there is no BSHF byte-shuffle header (it starts with ${head}): not an artifact written by parameter-golf's serialize()`);
  }
  const stride = data[4];
  const payload = data.subarray(5);
  if (stride < 2) return { stride, bytes: Buffer.from(payload) };
  const bytes = Buffer.alloc(payload.length);
  let src = 0;
  // plane p fills positions p, p+stride, …; the planes sit one after another in the payload
  for (let plane = 0; plane < stride; plane++) {
    for (let dst = plane; dst < payload.length; dst += stride) bytes[dst] = payload[src++];
  }
  return { stride, bytes };
}

function startsWith(data: Uint8Array, magic: Uint8Array): boolean {
  return data.length >= magic.length && magic.every((b, i) => data[i] === b);
}

// ---- the pickled {"w", "m"} ----

interface QuantState {
  stored: Map<string, HostTensor>;
  meta: Map<string, string>;
  dtypeOf: (t: HostTensor) => StorageDtype | undefined;
}

function readQuantState(zipBytes: Buffer, file: string): QuantState {
  const name = path.basename(file);
  const archive = unpickleTorchArchive(zipBytes, file);
  const root = archive.root;
  const w = root instanceof PyDict ? root.map.get('w') : undefined;
  const m = root instanceof PyDict ? root.map.get('m') : undefined;
  if (!(w instanceof PyDict) || !(m instanceof PyDict)) {
    throw new BadInputError(`${name}: the artifact's pickle is not {"w": tensors, "m": kinds} as serialize() writes it (keys: ${keysOf(root)})`);
  }
  const stored = new Map<string, HostTensor>();
  for (const [k, v] of w.map) {
    if (typeof k !== 'string' || !isTensor(v)) throw new BadInputError(`${name}: "w" entry ${String(k)} is not a named tensor (the artifact is damaged)`);
    stored.set(k, v);
  }
  const meta = new Map<string, string>();
  for (const [k, v] of m.map) {
    if (typeof k !== 'string' || typeof v !== 'string') throw new BadInputError(`${name}: "m" entry ${String(k)} is not a name → kind string (the artifact is damaged)`);
    meta.set(k, v);
  }
  return { stored, meta, dtypeOf: archive.storageDtypeOf };
}

function isTensor(v: unknown): v is HostTensor {
  return !!v && typeof v === 'object' && 'shape' in v && 'values' in v;
}

function keysOf(root: unknown): string {
  if (!(root instanceof PyDict)) return 'none, it is not a dict';
  return [...root.map.keys()].slice(0, 6).map((k) => `'${String(k)}'`).join(', ') || 'none';
}

// ---- dequantization (their dequantize_mixed) ----

/** A kind their gptq_mixed_quantize writes, with the largest |q| it can store. */
type KnownKind = { passthrough: true } | { passthrough: false; qMax: number };

function parseKind(kind: string): KnownKind | undefined {
  if (kind === 'passthrough (float16)') return { passthrough: true };
  // absmax per row: round(W / max|W_row| · 127)
  if (kind === 'int8_per_row') return { passthrough: false, qMax: 127 };
  // GPTQ with clip_range = 2^(bits−1) − 1
  const gptq = /^gptq \(int([2-8])\)$/.exec(kind);
  return gptq ? { passthrough: false, qMax: 2 ** (Number(gptq[1]) - 1) - 1 } : undefined;
}

function dequantize(tensorName: string, kind: string, stored: Map<string, HostTensor>, dtypeOf: QuantState['dtypeOf'], name: string): HostTensor {
  const known = parseKind(kind);
  if (!known) throw new BadInputError(`${name}: tensor '${tensorName}' has quantization kind '${kind}', which this reader does not know (known: 'passthrough (float16)', 'int8_per_row', 'gptq (intB)' with B ≤ 8)`);
  const need = (key: string): HostTensor => {
    const t = stored.get(key);
    if (!t) throw new BadInputError(`${name}: "m" lists '${tensorName}' as '${kind}' but "w" has no '${key}' (the artifact is damaged)`);
    return t;
  };
  // fp16 widened to float32 is exact; non-float passthrough tensors stay as they are, as in theirs
  if (known.passthrough) return need(tensorName);
  const q = need(`${tensorName}.q`), scale = need(`${tensorName}.scale`);
  checkQuantPair(tensorName, kind, known.qMax, q, scale, dtypeOf, name);
  return scaleRows(q, scale);
}

function checkQuantPair(tensorName: string, kind: string, qMax: number, q: HostTensor, scale: HostTensor, dtypeOf: QuantState['dtypeOf'], name: string): void {
  const qType = dtypeOf(q), sType = dtypeOf(scale);
  if (!qType || isFloatDtype(qType)) throw new BadInputError(`${name}: '${tensorName}.q' is stored as ${qType ?? 'an unknown type'}, not integers (the artifact is damaged)`);
  if (!sType || !isFloatDtype(sType)) throw new BadInputError(`${name}: '${tensorName}.scale' is stored as ${sType ?? 'an unknown type'}, not floats (the artifact is damaged)`);
  const rows = q.shape.length ? q.shape[0] : 1;
  if (scale.shape.length > 0 && (q.shape.length === 0 || sizeOf(scale.shape) !== rows)) {
    throw new BadInputError(`${name}: '${tensorName}.scale' has shape [${scale.shape}] but '${tensorName}.q' [${q.shape}] needs one scale per row (${rows}) or a scalar`);
  }
  for (let i = 0; i < q.values.length; i++) {
    const v = q.values[i];
    if (v < -qMax || v > qMax) throw new BadInputError(`${name}: '${tensorName}.q' holds ${v} at element ${i}, outside ±${qMax} for '${kind}' (the artifact is damaged)`);
  }
}

/**
 * `q.float() * scale.float().view(rows, 1, …)` (or times a scalar scale): one float32 product per
 * element. An int8 times an fp16 value is exact in double, so storing it in a Float32Array
 * rounds once, exactly as a float32 multiply does.
 */
function scaleRows(q: HostTensor, scale: HostTensor): HostTensor {
  const out = new Float32Array(q.values.length);
  const rowLength = scale.shape.length === 0 ? q.values.length : sizeOf(q.shape.slice(1));
  for (let i = 0; i < out.length; i++) out[i] = q.values[i] * scale.values[rowLength ? Math.floor(i / rowLength) : 0];
  return makeHostTensor(q.shape, out);
}

// ---- rebanking (their _rebank_state_dict) ----

const BANK_MEMBER = /^blocks\.(\d+)\.(attn\.c_q|attn\.proj|attn\.c_k|attn\.c_v|mlp\.fc|mlp\.proj)\.weight$/;

type Dims = Pick<PtzInfo, 'numLayers' | 'modelDim' | 'kvDim' | 'hiddenDim'>;

/**
 * Each bank stacks its members block by block, one member after the other: `qo_bank` rows
 * 0..L−1 are c_q of blocks 0..L−1 and rows L..2L−1 their proj. `shape` is each member's shape.
 */
const BANKS: ReadonlyArray<{ bank: string; members: string[]; shape: (d: Dims) => [number, number] }> = [
  { bank: 'qo_bank', members: ['attn.c_q', 'attn.proj'], shape: (d) => [d.modelDim, d.modelDim] },
  { bank: 'kv_bank', members: ['attn.c_k', 'attn.c_v'], shape: (d) => [d.kvDim, d.modelDim] },
  { bank: 'mlp_up_bank', members: ['mlp.fc'], shape: (d) => [d.hiddenDim, d.modelDim] },
  { bank: 'mlp_down_bank', members: ['mlp.proj'], shape: (d) => [d.modelDim, d.hiddenDim] },
];

function rebank(flat: Map<string, HostTensor>, name: string): { stateDict: Map<string, HostTensor>; dims: Dims } {
  const dims = bankDims(flat, name);
  const stateDict = new Map<string, HostTensor>();
  for (const { bank, members, shape } of BANKS) {
    const [rows, cols] = shape(dims);
    const values = new Float32Array(members.length * dims.numLayers * rows * cols);
    members.forEach((member, half) => {
      for (let i = 0; i < dims.numLayers; i++) {
        const t = memberOf(flat, i, member, [rows, cols], name);
        values.set(t.values, (half * dims.numLayers + i) * rows * cols);
      }
    });
    stateDict.set(bank, makeHostTensor([members.length * dims.numLayers, rows, cols], values)); // (members·L, rows, cols)
  }
  for (const [tensorName, t] of flat) {
    if (BANK_MEMBER.test(tensorName)) continue;
    if (stateDict.has(tensorName)) throw new BadInputError(`${name}: the artifact holds a flat tensor named '${tensorName}', which clashes with the rebanked one (the artifact is damaged)`);
    stateDict.set(tensorName, t);
  }
  return { stateDict, dims };
}

/** L from the highest block index of any bank member; C, kv and hidden widths from block 0. */
function bankDims(flat: Map<string, HostTensor>, name: string): Dims {
  let numLayers = 0;
  for (const tensorName of flat.keys()) {
    const hit = BANK_MEMBER.exec(tensorName);
    if (hit) numLayers = Math.max(numLayers, Number(hit[1]) + 1);
  }
  if (!numLayers) throw new BadInputError(`${name}: the artifact holds no blocks.{i}.attn.c_q.weight or other bank members: not a parameter-golf banked model`);
  const first = (member: string): number[] => memberOf(flat, 0, member, undefined, name).shape;
  const cq = first('attn.c_q'), ck = first('attn.c_k'), fc = first('mlp.fc');
  return { numLayers, modelDim: cq[cq.length - 1], kvDim: ck[0], hiddenDim: fc[0] };
}

function memberOf(flat: Map<string, HostTensor>, block: number, member: string, shape: [number, number] | undefined, name: string): HostTensor {
  const key = `blocks.${block}.${member}.weight`;
  const t = flat.get(key);
  if (!t) throw new BadInputError(`${name}: the artifact has no '${key}', which the banks need for every block up to the highest one it holds (the artifact is incomplete)`);
  if (t.dtype !== 'float32' || t.shape.length !== 2 || (shape && (t.shape[0] !== shape[0] || t.shape[1] !== shape[1]))) {
    throw new BadInputError(`${name}: '${key}' is a ${t.dtype} [${t.shape}] tensor, but its bank needs float [${shape ?? 'rows, cols'}] (the artifact does not fit one model)`);
  }
  return t;
}
