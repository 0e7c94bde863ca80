/**
 * PyTorch `.pt`/`.pth` checkpoints: the zip format `torch.save` writes since PyTorch 1.6 —
 * `<archive>/data.pkl` (the pickled object, read by the restricted unpickler) and one entry
 * `<archive>/data/<key>` per storage (raw little-endian bytes, whatever device they were saved
 * from). Accepts what a-gpt's `save_checkpoint` writes — `{model, optimizer, step, config,
 * best_val_loss}` —, what nanoGPT's `train.py` writes — `{model, optimizer, model_args, iter_num,
 * best_val_loss, config}` — and bare state dicts. Tensors come out contiguous, row-major, float32 or
 * int32 (storage offset, shape and strides applied; half/bfloat16/double widened or narrowed,
 * int64 range-checked). `unpickleTorchArchive` gives other `torch.save` payloads (parameter-golf's
 * quantized artifact) as the unpickled object itself, under the same allow-list.
 */
import * as path from 'node:path';
import { BadInputError } from '../errors';
import { ZipArchive } from './zip';
import { PyDict, Tuple, unpickle, type PyCallable } from './pickle';
import { readInputFile } from './safetensors';
import { DTYPE_BYTES, decodeElements, isFloatDtype, sizeOf, type HostTensor, type StorageDtype } from './tensor';
import { isTloraCheckpoint, tloraCheckpointOf } from './tlora';

export interface TorchCheckpoint {
  kind: 'agpt-checkpoint' | 'state-dict';
  /** Model weights by PyTorch name, in the pickled (state_dict) order. */
  stateDict: Map<string, HostTensor>;
  /** Key order of the model state dict as pickled (parameters and persistent buffers). */
  stateDictOrder: string[];
  /** AdamW `state_dict()`: per parameter index `exp_avg`, `exp_avg_sq`, `step` (a 0-d tensor since PyTorch 1.12). */
  optimizer?: { state: Map<number, Record<string, HostTensor | number>>; paramGroups: Array<Record<string, unknown>> };
  /**
   * The state-dict name of each optimizer parameter index (`optimizer.state` keys are indices
   * into `model.parameters()`), when the optimizer state can be matched to the weights by order
   * and shape; undefined when it cannot be told (e.g. parameter groups in another order).
   */
  optimizerParamOrder?: string[];
  step?: number;
  config?: Record<string, unknown>;
  /** nanoGPT: the model's constructor arguments (n_layer, n_head, n_embd, block_size, bias, vocab_size, dropout). */
  modelArgs?: Record<string, unknown>;
  /** nanoGPT: the iteration the checkpoint was saved at. */
  iterNum?: number;
  bestValLoss?: number;
}

export function loadTorchCheckpoint(file: string): TorchCheckpoint {
  return decodeTorchCheckpoint(readInputFile(file), file);
}

/** Decode a checkpoint's bytes; `file` names it in errors. */
export function decodeTorchCheckpoint(buf: Buffer, file: string): TorchCheckpoint {
  const { root, storages } = openArchive(buf, file);
  return interpret(root, path.basename(file), storages);
}

/**
 * A `torch.save` archive unpickled as it is, for formats that are not model checkpoints (e.g. a
 * quantized artifact's `{"w": tensors, "m": kinds}`): `root` is the pickled object built from
 * PyDict / Tuple / arrays / plain values, with every tensor materialised as a HostTensor.
 */
export interface TorchArchive {
  root: unknown;
  /** The storage dtype a tensor of `root` was saved in (int8, float16, …), which HostTensor widens away. */
  storageDtypeOf(tensor: HostTensor): StorageDtype | undefined;
}

/** Unpickle a torch zip archive's bytes under the same allow-list as checkpoints; `file` names it in errors. */
export function unpickleTorchArchive(buf: Buffer, file: string): TorchArchive {
  const { root, storages } = openArchive(buf, file);
  return { root, storageDtypeOf: (t) => storages.views.get(t)?.dtype };
}

function openArchive(buf: Buffer, file: string): { root: unknown; storages: StorageReader } {
  const name = path.basename(file);
  refuseOtherFormats(buf, name);
  const zip = new ZipArchive(buf, file);
  const pkl = findDataPkl(zip, name);
  const prefix = pkl.slice(0, -'data.pkl'.length);
  if (zip.has(`${prefix}byteorder`) && zip.read(`${prefix}byteorder`).toString('latin1').trim() !== 'little') {
    throw new BadInputError(`${name}: saved on a big-endian machine, which is not supported (re-save it on x86 or ARM)`);
  }
  const storages = new StorageReader(zip, prefix, name);
  const root = unpickle(zip.read(pkl), {
    file: name,
    persistentLoad: (pid) => storages.reference(pid),
    globals: torchGlobals(storages, name),
  });
  return { root, storages };
}

/** Files that are not torch zip archives get a message that says what they are. */
function refuseOtherFormats(buf: Buffer, name: string): void {
  if (buf.length >= 2 && buf[0] === 0x80 && buf[1] <= 5) {
    throw new BadInputError(`${name}: saved in PyTorch's legacy (pre-1.6) format, which is not supported: re-save it with a current PyTorch (torch.save(torch.load(f), f))`);
  }
  if (buf.length >= 10 && buf.readUInt32LE(4) === 0 && buf[8] === 0x7b /* { */ && buf.readUInt32LE(0) + 8 <= buf.length) {
    throw new BadInputError(`${name}: this is a safetensors file: give it the .safetensors extension`);
  }
}

function findDataPkl(zip: ZipArchive, name: string): string {
  const names = zip.names();
  const pkl = names.find((n) => /^[^/]+\/data\.pkl$/.test(n)) ?? names.find((n) => /(^|\/)data\.pkl$/.test(n));
  if (pkl) {
    const prefix = pkl.slice(0, -'data.pkl'.length);
    if (names.some((n) => n.startsWith(`${prefix}code/`) || n === `${prefix}constants.pkl`)) {
      throw new BadInputError(`${name}: a TorchScript module (torch.jit.save), not a checkpoint: save the weights with torch.save(model.state_dict(), f)`);
    }
    return pkl;
  }
  const shown = names.slice(0, 5).join(', ') + (names.length > 5 ? ', …' : '');
  throw new BadInputError(`${name}: not a PyTorch checkpoint: the zip archive has no <archive>/data.pkl (it holds ${shown || 'nothing'}); save the checkpoint with torch.save`);
}

// ---- storages and tensors ----

/** A storage type global (`torch.FloatStorage`); `dtype` is null for ones we cannot convert (complex, quantized). */
class StorageType {
  constructor(readonly name: string, readonly dtype: StorageDtype | null) {}
}

/** Inert markers for the dtype and tensor-type globals that may appear in a pickle. */
class TorchDtype {
  constructor(readonly name: string) {}
}
class TorchTensorType {
  constructor(readonly name: string) {}
}

const STORAGE_DTYPES: Record<string, StorageDtype> = {
  FloatStorage: 'F32', HalfStorage: 'F16', BFloat16Storage: 'BF16', DoubleStorage: 'F64',
  LongStorage: 'I64', IntStorage: 'I32', ShortStorage: 'I16', CharStorage: 'I8', ByteStorage: 'U8', BoolStorage: 'BOOL',
};
const UNSUPPORTED_STORAGES = ['ComplexFloatStorage', 'ComplexDoubleStorage', 'QInt8Storage', 'QUInt8Storage', 'QInt32Storage', 'QUInt4x2Storage', 'QUInt2x4Storage', 'UntypedStorage'];
const TORCH_DTYPES = [
  'float32', 'float', 'float64', 'double', 'float16', 'half', 'bfloat16', 'int64', 'long', 'int32', 'int', 'int16', 'short',
  'int8', 'uint8', 'bool', 'complex64', 'complex128', 'uint16', 'uint32', 'uint64', 'float8_e4m3fn', 'float8_e5m2',
];

/** What a persistent id `('storage', storage_type, key, location, numel)` resolves to. */
interface StorageRef {
  type: StorageType;
  key: string;
  numel: number;
}

/** Where a tensor's values came from: tied weights are views of the same storage. */
interface View {
  key: string;
  dtype: StorageDtype;
  offset: number;
  shape: number[];
  stride: number[];
}

// The longest typed array worth allocating for one tensor (2^31 − 1 elements, 8 GiB of float32).
const MAX_ELEMENTS = 2 ** 31 - 1;

class StorageReader {
  readonly views = new WeakMap<HostTensor, View>();
  private readonly cache = new Map<string, Buffer>();

  constructor(private readonly zip: ZipArchive, private readonly prefix: string, private readonly name: string) {}

  private fail(m: string): never {
    throw new BadInputError(`${this.name}: ${m}`);
  }

  reference(pid: unknown): StorageRef {
    const items = pid instanceof Tuple ? pid.items : [];
    const [tag, type, key, location, numel] = items;
    if (tag !== 'storage' || !(type instanceof StorageType) || typeof key !== 'string' || typeof location !== 'string' || !isIndex(numel)) {
      this.fail('refused to load: the pickle holds a persistent id that is not a tensor storage — only tensors and plain containers are allowed');
    }
    return { type: type as StorageType, key: key as string, numel: numel as number };
  }

  /** `torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`. */
  rebuild(args: unknown[]): HostTensor {
    const [storage, offset, size, stride] = args;
    if (!isStorageRef(storage) || !isIndex(offset) || !(size instanceof Tuple) || !(stride instanceof Tuple)) this.fail('corrupt tensor record in the pickle (the checkpoint is damaged)');
    const shape = size.items, strides = stride.items;
    if (!shape.every(isIndex) || !strides.every(isIndex) || shape.length !== strides.length) this.fail(`corrupt tensor record in the pickle: size ${fmt(shape)}, stride ${fmt(strides)}`);
    const ref = storage as StorageRef;
    const dtype = ref.type.dtype;
    if (!dtype) this.fail(`a tensor is stored as ${ref.type.name}, which has no float32 or int32 equivalent (convert the checkpoint's tensors to float32)`);
    const tensor = this.materialise(ref, dtype!, offset as number, shape as number[], strides as number[]);
    this.views.set(tensor, { key: ref.key, dtype: dtype!, offset: offset as number, shape: shape as number[], stride: strides as number[] });
    return tensor;
  }

  /** A storage's bytes, read (and CRC-checked) once however many tensors view it. */
  private storageBytes(key: string): Buffer {
    let bytes = this.cache.get(key);
    if (!bytes) {
      const entry = `${this.prefix}data/${key}`;
      if (!this.zip.has(entry)) this.fail(`the pickle refers to storage '${key}' but the archive has no ${entry} (the checkpoint is incomplete)`);
      bytes = this.zip.read(entry);
      this.cache.set(key, bytes);
    }
    return bytes;
  }

  /** A contiguous row-major copy of a strided view into a storage. */
  private materialise(ref: StorageRef, dtype: StorageDtype, offset: number, shape: number[], stride: number[]): HostTensor {
    const bytes = this.storageBytes(ref.key);
    const elem = DTYPE_BYTES[dtype];
    if (bytes.length < ref.numel * elem) this.fail(`truncated: storage '${ref.key}' should hold ${ref.numel} ${dtype} values but has ${bytes.length} bytes (the checkpoint is damaged)`);
    const n = sizeOf(shape);
    if (n > MAX_ELEMENTS) this.fail(`a tensor of shape [${shape}] is larger than the ${MAX_ELEMENTS} elements one tensor can hold here`);
    const float = isFloatDtype(dtype);
    if (n === 0) return { shape, dtype: float ? 'float32' : 'int32', values: float ? new Float32Array(0) : new Int32Array(0) };
    const last = offset + shape.reduce((acc, d, k) => acc + (d - 1) * stride[k], 0);
    if (last >= ref.numel) this.fail(`corrupt tensor record: a view of storage '${ref.key}' reaches element ${last} but the storage holds ${ref.numel}`);
    const span = decodeElements(bytes.subarray(offset * elem), dtype, last - offset + 1, `${this.name}: storage '${ref.key}'`);
    if (isContiguous(shape, stride)) return { shape, dtype: float ? 'float32' : 'int32', values: span };
    return { shape, dtype: float ? 'float32' : 'int32', values: gather(span, shape, stride) };
  }
}

function isContiguous(shape: number[], stride: number[]): boolean {
  let expected = 1;
  for (let k = shape.length - 1; k >= 0; k--) {
    if (shape[k] !== 1 && stride[k] !== expected) return false;
    expected *= shape[k];
  }
  return true;
}

/** Row-major walk over a strided view (`span` starts at the view's first element). */
function gather(span: Float32Array | Int32Array, shape: number[], stride: number[]): Float32Array | Int32Array {
  const n = sizeOf(shape);
  const out = span instanceof Float32Array ? new Float32Array(n) : new Int32Array(n);
  const idx = new Array<number>(shape.length).fill(0);
  let src = 0;
  for (let i = 0; i < n; i++) {
    out[i] = span[src];
    for (let k = shape.length - 1; k >= 0; k--) {
      // odometer: advance the last axis, carry into the previous ones
      if (++idx[k] < shape[k]) {
        src += stride[k];
        break;
      }
      src -= (shape[k] - 1) * stride[k];
      idx[k] = 0;
    }
  }
  return out;
}

function isIndex(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

function isStorageRef(v: unknown): v is StorageRef {
  return !!v && typeof v === 'object' && (v as StorageRef).type instanceof StorageType;
}

function fmt(items: unknown[]): string {
  return `(${items.map((x) => String(x)).join(', ')})`;
}

// ---- the allowed globals ----

function torchGlobals(storages: StorageReader, name: string): Record<string, PyCallable | object> {
  const rebuild: PyCallable = (args) => storages.rebuild(args);
  const firstArg: PyCallable = (args) => args[0];
  const globals: Record<string, PyCallable | object> = {
    'torch._utils _rebuild_tensor_v2': rebuild,
    'torch._utils _rebuild_tensor': rebuild,
    // a Parameter is its data; requires_grad and hooks do not matter here
    'torch._utils _rebuild_parameter': firstArg,
    'torch._utils _rebuild_parameter_with_state': firstArg,
    // a tensor with Python attributes: (rebuild function, type, its arguments, state)
    'torch._tensor _rebuild_from_type_v2': (args) => rebuildFromType(args, name),
    'torch Tensor': new TorchTensorType('Tensor'),
    'torch.nn.parameter Parameter': new TorchTensorType('Parameter'),
    'torch Size': (args) => new Tuple(args[0] instanceof Tuple ? args[0].items : []),
    'torch device': (args) => args.filter((a) => a !== null && a !== undefined).join(':'),
    'collections OrderedDict': orderedDict,
    'builtins set': containerOf,
    'builtins frozenset': containerOf,
    '__builtin__ set': containerOf,
    '__builtin__ frozenset': containerOf,
    // protocol 2 pickles `bytes` as _codecs.encode(text, 'latin1')
    '_codecs encode': (args) => codecsEncode(args, name),
  };
  for (const [type, dtype] of Object.entries(STORAGE_DTYPES)) globals[`torch ${type}`] = new StorageType(type, dtype);
  for (const type of UNSUPPORTED_STORAGES) globals[`torch ${type}`] = new StorageType(type, null);
  for (const dtype of TORCH_DTYPES) globals[`torch ${dtype}`] = new TorchDtype(dtype);
  return globals;
}

function rebuildFromType(args: unknown[], name: string): unknown {
  const [func, type, inner] = args;
  if (typeof func !== 'function' || !(type instanceof TorchTensorType) || !(inner instanceof Tuple)) {
    throw new BadInputError(`${name}: refused to load: _rebuild_from_type_v2 with something other than a tensor — only tensors and plain containers are allowed`);
  }
  return (func as PyCallable)(inner.items);
}

function orderedDict(args: unknown[]): PyDict {
  const d = new PyDict();
  const items = args[0];
  if (Array.isArray(items)) for (const kv of items) if (kv instanceof Tuple && kv.items.length === 2) d.map.set(kv.items[0], kv.items[1]);
  return d;
}

function containerOf(args: unknown[]): unknown[] {
  const items = args[0];
  return Array.isArray(items) ? [...items] : items instanceof Tuple ? [...items.items] : [];
}

function codecsEncode(args: unknown[], name: string): Uint8Array {
  const [text, encoding] = args;
  if (typeof text !== 'string' || (encoding !== 'latin1' && encoding !== 'latin-1')) throw new BadInputError(`${name}: refused to load: _codecs.encode is only allowed for latin1 bytes`);
  return Uint8Array.from(Buffer.from(text, 'latin1'));
}

// ---- what the unpickled object means ----

function isTensor(v: unknown): v is HostTensor {
  return !!v && typeof v === 'object' && 'shape' in v && 'values' in v;
}

function interpret(root: unknown, name: string, storages: StorageReader): TorchCheckpoint {
  if (!(root instanceof PyDict)) throw new BadInputError(`${name}: not a model checkpoint: the pickle holds ${describe(root)}, expected a dict (a-gpt's checkpoint or a state_dict)`);
  if (isTloraCheckpoint(root)) return tloraCheckpointOf(root, name); // Temporal LoRA's {adapters, time_mixer, adapter_names}
  const model = root.map.get('model');
  if (model instanceof PyDict) {
    const { stateDict, order } = tensorDict(model, name, "the 'model' entry");
    const optimizer = optimizerState(root.map.get('optimizer'), name);
    const config = root.map.get('config');
    const modelArgs = root.map.get('model_args');
    return {
      kind: 'agpt-checkpoint',
      stateDict,
      stateDictOrder: order,
      optimizer,
      optimizerParamOrder: optimizer ? matchOptimizerParams(order, stateDict, optimizer, storages) : undefined,
      step: numberOf(root.map.get('step')),
      config: config instanceof PyDict ? (plain(config, name) as Record<string, unknown>) : undefined,
      modelArgs: modelArgs instanceof PyDict ? (plain(modelArgs, name) as Record<string, unknown>) : undefined,
      iterNum: numberOf(root.map.get('iter_num')),
      bestValLoss: numberOf(root.map.get('best_val_loss')),
    };
  }
  const { stateDict, order } = tensorDict(root, name, 'the state dict');
  return { kind: 'state-dict', stateDict, stateDictOrder: order };
}

/** The tensors of a state dict, with torch.compile's `_orig_mod.` and DDP's `module.` prefixes removed. */
function tensorDict(d: PyDict, name: string, what: string): { stateDict: Map<string, HostTensor>; order: string[] } {
  const entries: [string, HostTensor][] = [];
  for (const [k, v] of d.map) if (typeof k === 'string' && isTensor(v)) entries.push([k, v]);
  if (!entries.length) {
    const keys = [...d.map.keys()].slice(0, 6).map((k) => `'${String(k)}'`).join(', ');
    throw new BadInputError(`${name}: not a model checkpoint: ${what} holds no tensors (keys: ${keys || 'none'}); expected a-gpt's {model, optimizer, step, ...}, nanoGPT's {model, optimizer, model_args, ...} or a state_dict`);
  }
  for (const prefix of ['_orig_mod.', 'module.']) {
    if (entries.every(([k]) => k.startsWith(prefix))) entries.forEach((e) => (e[0] = e[0].slice(prefix.length)));
  }
  return { stateDict: new Map(entries), order: entries.map(([k]) => k) };
}

function optimizerState(opt: unknown, name: string): TorchCheckpoint['optimizer'] {
  if (!(opt instanceof PyDict)) return undefined;
  const state = new Map<number, Record<string, HostTensor | number>>();
  const raw = opt.map.get('state');
  if (raw instanceof PyDict) {
    for (const [k, v] of raw.map) {
      if (!isIndex(k) || !(v instanceof PyDict)) continue;
      const fields = [...v.map].filter((kv): kv is [string, HostTensor | number] => typeof kv[0] === 'string' && (isTensor(kv[1]) || typeof kv[1] === 'number'));
      state.set(k, Object.fromEntries(fields));
    }
  }
  const groups = opt.map.get('param_groups');
  const paramGroups = Array.isArray(groups) ? groups.filter((g) => g instanceof PyDict).map((g) => plain(g, name) as Record<string, unknown>) : [];
  return { state, paramGroups };
}

/**
 * Names for the optimizer's parameter indices. PyTorch numbers parameters in the order of
 * `param_groups[*].params`, which for `AdamW(model.parameters())` is `parameters()` order: the
 * state-dict order without buffers and with each tied tensor once. Tied tensors are found by
 * their shared storage view; buffers by walking the state dict in order and matching each
 * index's moment shape. Undefined when that does not account for every index.
 */
function matchOptimizerParams(order: string[], stateDict: Map<string, HostTensor>, optimizer: NonNullable<TorchCheckpoint['optimizer']>, storages: StorageReader): string[] | undefined {
  const indices = optimizer.paramGroups.flatMap((g) => (Array.isArray(g.params) ? g.params : []));
  const count = indices.length || optimizer.state.size;
  if (!indices.every((p, i) => p === i) && indices.length) return undefined;
  const seen = new Set<string>();
  const candidates = order.filter((n) => {
    const v = storages.views.get(stateDict.get(n)!);
    const id = v ? `${v.key}@${v.offset}:${v.shape}:${v.stride}` : n;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
  const names: string[] = [];
  let j = 0;
  for (let i = 0; i < count; i++) {
    const moment = optimizer.state.get(i)?.exp_avg;
    const want = isTensor(moment) ? moment.shape : null;
    // a candidate whose shape differs from this index's moments is a buffer: skip it
    while (j < candidates.length && want && !sameShape(stateDict.get(candidates[j])!.shape, want)) j++;
    if (j >= candidates.length) return undefined;
    names.push(candidates[j++]);
  }
  return names;
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function numberOf(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (isTensor(v) && v.values.length === 1) return v.values[0];
  return undefined;
}

const MAX_DEPTH = 64;

/**
 * PyDict/Tuple/sets → plain JSON-like values (dict keys as strings; integers beyond 2^53 become
 * the nearest double). Tensors and bytes are kept as they are.
 */
function plain(v: unknown, name: string, depth = 0): unknown {
  if (depth > MAX_DEPTH) throw new BadInputError(`${name}: a value in the checkpoint is nested more than ${MAX_DEPTH} levels deep (or contains itself); is the file damaged?`);
  if (v instanceof PyDict) return Object.fromEntries([...v.map].map(([k, x]) => [String(k), plain(x, name, depth + 1)]));
  if (v instanceof Tuple) return v.items.map((x) => plain(x, name, depth + 1));
  if (Array.isArray(v)) return v.map((x) => plain(x, name, depth + 1));
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof TorchDtype) return v.name;
  return v;
}

function describe(v: unknown): string {
  if (v instanceof Tuple) return 'a tuple';
  if (Array.isArray(v)) return 'a list';
  if (isTensor(v)) return 'a single tensor';
  return v === null ? 'None' : `a ${typeof v}`;
}
