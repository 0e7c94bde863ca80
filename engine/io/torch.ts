/**
 * PyTorch `.pt`/`.pth` checkpoints (the zip format of `torch.save` since 1.6): `<archive>/data.pkl`
 * unpickled by the restricted unpickler, tensors' bytes from `<archive>/data/<key>`. Accepts what
 * a-gpt's `save_checkpoint` writes — `{model, optimizer, step, config, best_val_loss}`, tensors
 * saved from CUDA — and bare state dicts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BadInputError } from '../errors';
import { ZipArchive } from './zip';
import { PyDict, StorageType, Tuple, unpickle } from './pickle';
import { decodeElements, sizeOf, type HostTensor, type StorageDtype } from './tensor';

export interface TorchCheckpoint {
  kind: 'agpt-checkpoint' | 'state-dict';
  /** Model weights by PyTorch name, in the pickled (state_dict) order. */
  stateDict: Map<string, HostTensor>;
  /** Key order of the model state dict: AdamW state indices refer to this order. */
  stateDictOrder: string[];
  optimizer?: { state: Map<number, Record<string, HostTensor | number>>; paramGroups: Record<string, unknown>[] };
  step?: number;
  config?: Record<string, unknown>;
  bestValLoss?: number;
}

const STORAGES: Record<string, StorageDtype> = {
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  DoubleStorage: 'F64',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

interface StorageRef {
  dtype: StorageDtype;
  key: string;
}

export function loadTorchCheckpoint(file: string): TorchCheckpoint {
  if (!fs.existsSync(file)) throw new BadInputError(`no such file: ${file}`);
  const name = path.basename(file);
  const buf = fs.readFileSync(file);
  if (buf.length >= 2 && buf[0] === 0x80 && buf[1] <= 5) {
    throw new BadInputError(`${name}: legacy (pre-1.6) torch.save format is not supported: re-save it with a current PyTorch (torch.save(torch.load(f), f))`);
  }
  const zip = new ZipArchive(buf, file);
  const pkl = zip.names().find((n) => /(^|\/)data\.pkl$/.test(n));
  if (!pkl) throw new BadInputError(`${name}: not a PyTorch checkpoint (the zip has no data.pkl)`);
  const prefix = pkl.slice(0, -'data.pkl'.length);
  const order = zip.names().find((n) => n === `${prefix}byteorder`);
  if (order && zip.read(order).toString().trim() !== 'little') throw new BadInputError(`${name}: big-endian checkpoints are not supported`);
  const storages = new Map<string, Buffer>();
  const storageBytes = (key: string) => {
    let b = storages.get(key);
    if (!b) {
      b = zip.read(`${prefix}data/${key}`);
      storages.set(key, b);
    }
    return b;
  };
  const root = unpickle(zip.read(pkl), {
    file: name,
    persistentLoad: (pid) => persistentStorage(pid, name),
    globals: torchGlobals(name, storageBytes),
  });
  return interpret(root, name);
}

function persistentStorage(pid: unknown, name: string): StorageRef {
  // ('storage', storage_type, key, location, numel)
  if (!(pid instanceof Tuple) || pid.items[0] !== 'storage' || !(pid.items[1] instanceof StorageType)) {
    throw new BadInputError(`${name}: refused to load: unknown persistent id in the pickle`);
  }
  const type = pid.items[1] as StorageType;
  return { dtype: STORAGES[type.name], key: String(pid.items[2]) };
}

function torchGlobals(name: string, storageBytes: (key: string) => Buffer) {
  const rebuildTensor = (args: unknown[]): HostTensor => {
    const [storage, offset, size, stride] = args as [StorageRef, number, Tuple, Tuple];
    if (!storage || !storage.dtype || !(size instanceof Tuple) || !(stride instanceof Tuple)) {
      throw new BadInputError(`${name}: corrupt tensor record in the pickle`);
    }
    return materialise(storageBytes(storage.key), storage.dtype, offset, size.items as number[], stride.items as number[], `${name} storage ${storage.key}`);
  };
  const globals: Record<string, ((args: unknown[]) => unknown) | StorageType> = {
    'collections OrderedDict': () => new PyDict(),
    'torch._utils _rebuild_tensor_v2': rebuildTensor,
    'torch._utils _rebuild_parameter': (args) => args[0],
    'torch._utils _rebuild_parameter_with_state': (args) => args[0],
  };
  for (const s of Object.keys(STORAGES)) globals[`torch ${s}`] = new StorageType(s);
  return globals;
}

/** A contiguous row-major copy of a strided view into a storage. */
function materialise(bytes: Buffer, dtype: StorageDtype, offset: number, shape: number[], stride: number[], what: string): HostTensor {
  const n = sizeOf(shape);
  let maxIndex = offset;
  shape.forEach((d, i) => (maxIndex += d > 0 ? (d - 1) * stride[i] : 0));
  let all: Float32Array | Int32Array;
  try {
    all = decodeElements(bytes, dtype, n === 0 ? 0 : maxIndex + 1, what);
  } catch (e) {
    throw new BadInputError(`${what}: ${(e as Error).message} (truncated checkpoint?)`);
  }
  const float = dtype.startsWith('F') || dtype === 'BF16';
  const out = float ? new Float32Array(n) : new Int32Array(n);
  const idx = new Array(shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    let src = offset;
    for (let k = 0; k < shape.length; k++) src += idx[k] * stride[k];
    out[i] = all[src];
    for (let k = shape.length - 1; k >= 0; k--) {
      if (++idx[k] < shape[k]) break;
      idx[k] = 0;
    }
  }
  return { shape, dtype: float ? 'float32' : 'int32', values: out };
}

function isTensor(v: unknown): v is HostTensor {
  return !!v && typeof v === 'object' && 'shape' in v && 'values' in v;
}

function tensorDict(d: PyDict, name: string, what: string): { map: Map<string, HostTensor>; order: string[] } {
  const map = new Map<string, HostTensor>();
  for (const [k, v] of d.map) {
    if (typeof k !== 'string') throw new BadInputError(`${name}: ${what} has a non-string key ${String(k)}`);
    if (isTensor(v)) map.set(k, v);
  }
  return { map, order: [...map.keys()] };
}

function interpret(root: unknown, name: string): TorchCheckpoint {
  if (!(root instanceof PyDict)) throw new BadInputError(`${name}: not a checkpoint: the pickle holds ${describe(root)}, expected a dict`);
  const model = root.map.get('model');
  if (model instanceof PyDict) {
    const { map, order } = tensorDict(model, name, "'model'");
    return {
      kind: 'agpt-checkpoint',
      stateDict: map,
      stateDictOrder: order,
      optimizer: optimizerState(root.map.get('optimizer')),
      step: numberOr(root.map.get('step')),
      config: plain(root.map.get('config')) as Record<string, unknown> | undefined,
      bestValLoss: numberOr(root.map.get('best_val_loss')),
    };
  }
  const { map, order } = tensorDict(root, name, 'the state dict');
  if (!map.size) throw new BadInputError(`${name}: not a checkpoint: no tensors and no 'model' entry`);
  return { kind: 'state-dict', stateDict: map, stateDictOrder: order };
}

function optimizerState(opt: unknown): TorchCheckpoint['optimizer'] {
  if (!(opt instanceof PyDict)) return undefined;
  const state = new Map<number, Record<string, HostTensor | number>>();
  const raw = opt.map.get('state');
  if (raw instanceof PyDict) {
    for (const [k, v] of raw.map) {
      if (typeof k !== 'number' || !(v instanceof PyDict)) continue;
      const entry: Record<string, HostTensor | number> = {};
      for (const [sk, sv] of v.map) if (typeof sk === 'string' && (isTensor(sv) || typeof sv === 'number')) entry[sk] = sv as HostTensor | number;
      state.set(k, entry);
    }
  }
  const groups = opt.map.get('param_groups');
  return { state, paramGroups: Array.isArray(groups) ? (groups.map(plain) as Record<string, unknown>[]) : [] };
}

function numberOr(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (isTensor(v) && v.values.length === 1) return v.values[0];
  return undefined;
}

/** PyDict/Tuple → plain JSON-like values. */
export function plain(v: unknown): unknown {
  if (v instanceof PyDict) return Object.fromEntries([...v.map].map(([k, x]) => [String(k), plain(x)]));
  if (v instanceof Tuple) return v.items.map(plain);
  if (Array.isArray(v)) return v.map(plain);
  return v;
}

function describe(v: unknown): string {
  if (v instanceof Tuple) return 'a tuple';
  if (Array.isArray(v)) return 'a list';
  if (isTensor(v)) return 'a single tensor';
  return v === null ? 'None' : typeof v;
}
