/**
 * Is a file beside a watched run a checkpoint the engine can load? Asked of the engine's own
 * readers (engine/io/checkpoint.ts: readRaw, then the family's interpretation with its shape
 * checks), so a mark on the monitor's curve always opens. A safetensors file's header is read
 * first (a few KiB): one still being written (its tensors reach past the end of the file) is
 * `incomplete` — asked again later — without reading its tensors. Files above FULL_CHECK_BYTES are
 * judged by their header alone (names and shapes; safetensors only).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Family } from '../protocol';
import { BadInputError } from '../errors';
import { interpret, readRaw, type RawCheckpoint } from '../io/checkpoint';
import type { HostTensor } from '../io/tensor';
import { countParams, familyDef, recogniseFamily } from '../models/registry';

/** Above this a checkpoint is not read whole just to be checked. */
export const FULL_CHECK_BYTES = 512 * 1024 * 1024;

export interface CheckpointFacts {
  family: Family;
  layers: number;
  heads: number;
  paramCount: number;
  /** The step the file itself records (our metadata, a torch dict's step / iter_num). */
  step?: number;
}

export type Inspection = { kind: 'loadable'; facts: CheckpointFacts } | { kind: 'incomplete' } | { kind: 'unloadable'; reason: string };

interface SafetensorsHeader {
  entries: { name: string; shape: number[]; end: number }[];
  dataStart: number;
  metadata: Record<string, unknown>;
}

/** The header of a safetensors file, or null when it is not one (the full reader says why). */
function readSafetensorsHeader(file: string): SafetensorsHeader | null {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const len = Buffer.alloc(8);
    if (fs.readSync(fd, len, 0, 8, 0) < 8) return null;
    const n = Number(len.readBigUInt64LE(0));
    if (n < 2 || n > 100_000_000) return null;
    const header = Buffer.alloc(n);
    if (fs.readSync(fd, header, 0, n, 8) < n) return null;
    const json = JSON.parse(header.toString('utf8')) as Record<string, { shape?: number[]; data_offsets?: [number, number] } | Record<string, unknown>>;
    const entries = Object.entries(json).filter(([k]) => k !== '__metadata__').map(([name, e]) => {
      const t = e as { shape?: number[]; data_offsets?: [number, number] };
      return { name, shape: t.shape ?? [], end: t.data_offsets?.[1] ?? 0 };
    });
    return { entries, dataStart: 8 + n, metadata: (json.__metadata__ as Record<string, unknown>) ?? {} };
  } catch {
    return null;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Our training checkpoints keep the step in their metadata's `state`. */
function metadataStep(metadata: Record<string, unknown>): number | undefined {
  try {
    const state = JSON.parse(typeof metadata.state === 'string' ? metadata.state : 'null') as { step?: unknown } | null;
    return typeof state?.step === 'number' ? state.step : undefined;
  } catch {
    return undefined;
  }
}

export function inspectCheckpoint(file: string): Inspection {
  let size: number;
  try {
    size = fs.statSync(file).size;
  } catch {
    return { kind: 'incomplete' }; // gone or not there yet
  }
  const header = file.toLowerCase().endsWith('.safetensors') ? readSafetensorsHeader(file) : null;
  if (header && header.dataStart + Math.max(0, ...header.entries.map((e) => e.end)) > size) return { kind: 'incomplete' };
  try {
    if (size <= FULL_CHECK_BYTES) return { kind: 'loadable', facts: fullCheck(file, header) };
    if (header) return headerCheck(file, header);
    return { kind: 'unloadable', reason: `${path.basename(file)} is larger than ${FULL_CHECK_BYTES >> 20} MiB and not safetensors: not checked (analyse it to load it)` };
  } catch (e) {
    if (e instanceof BadInputError) return { kind: 'unloadable', reason: e.message };
    throw e;
  }
}

function fullCheck(file: string, header: SafetensorsHeader | null): CheckpointFacts {
  const raw = readRaw(file);
  const ck = interpret(raw, {});
  const c = ck.config, def = familyDef(c.family);
  const extra = raw.extra as { step?: unknown; iter_num?: unknown };
  const step = header ? metadataStep(header.metadata) : typeof extra.iter_num === 'number' ? extra.iter_num : typeof extra.step === 'number' ? extra.step : undefined;
  return { family: c.family, layers: def.layerCount(c), heads: c.n_head, paramCount: countParams(c), ...(step !== undefined ? { step } : {}) };
}

/** Names and shapes only: the family that recognises them; the parameter count from the shapes. */
function headerCheck(file: string, header: SafetensorsHeader): Inspection {
  const tensors = new Map<string, HostTensor>(header.entries.map((e) => [e.name, { shape: e.shape, dtype: 'float32', values: new Float32Array(0) }]));
  const raw: RawCheckpoint = { path: file, name: path.basename(file), format: 'safetensors', tensors, fileConfig: {}, sidecar: {}, extra: {} };
  const def = recogniseFamily(raw);
  if (!def) return { kind: 'unloadable', reason: `${path.basename(file)}: not a model architecture Head Lens knows` };
  const paramCount = header.entries.filter((e) => !e.name.startsWith('optim.')).reduce((s, e) => s + e.shape.reduce((a, b) => a * b, 1), 0);
  const step = metadataStep(header.metadata);
  return { kind: 'loadable', facts: { family: def.families[0], layers: 0, heads: 0, paramCount, ...(step !== undefined ? { step } : {}) } };
}
